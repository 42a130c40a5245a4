import Foundation
@testable import NCS
import Testing

@Suite struct SignatureTests {
    static let vectorSHA1 = "033c62f40f687675f17f0f41f91a40c71c0f134c"
    static let vectorSHA256 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99"

    @Test func officialTestVectorBodyIsExact() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        #expect(body.count == 155)
        #expect(body.first == UInt8(ascii: "{") && body.last == UInt8(ascii: "}"))
    }

    @Test func officialTestVectorSignatures() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let signed = SignatureVerifier.sign(body: body, secret: "secret")
        #expect(signed.v1 == Self.vectorSHA1)
        #expect(signed.v2 == Self.vectorSHA256)

        let verifier = SignatureVerifier(secrets: ["secret"])
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: nil) == .valid(.v1, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: nil, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 0))
        // Data works too (ContiguousBytes).
        #expect(verifier.verify(body: Data(body), v1: nil, v2: Self.vectorSHA256).isValid)
    }

    @Test func oneChangedByteFails() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["secret"])
        for position in [0, 77, body.count - 1] {
            var tampered = body
            tampered[position] ^= 0x01
            #expect(verifier.verify(body: tampered, v1: Self.vectorSHA1, v2: Self.vectorSHA256) == .invalid(.v2))
            #expect(verifier.verify(body: tampered, v1: Self.vectorSHA1, v2: nil) == .invalid(.v1))
        }
        // A changed signature character fails too.
        var wrong = Array(Self.vectorSHA256)
        wrong[10] = wrong[10] == "a" ? "b" : "a"
        #expect(verifier.verify(body: body, v1: nil, v2: String(wrong)) == .invalid(.v2))
    }

    @Test func headerIsCaseInsensitiveAndTrimmed() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["secret"])
        #expect(verifier.verify(body: body, v1: nil, v2: Self.vectorSHA256.uppercased()) == .valid(.v2, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1.uppercased(), v2: nil) == .valid(.v1, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: nil, v2: "  \(Self.vectorSHA256) ") == .valid(.v2, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: "\t\(Self.vectorSHA1)\t ", v2: nil) == .valid(.v1, secretIndex: 0))
        // Mixed case within one value.
        let mixed = String(Self.vectorSHA256.enumerated().map { $0.offset.isMultiple(of: 2) ? Character($0.element.uppercased()) : $0.element })
        #expect(verifier.verify(body: body, v1: nil, v2: mixed) == .valid(.v2, secretIndex: 0))
    }

    /// Every ASCII byte in either place of a digit pair: accepted exactly when it is a hex digit
    /// of either case, with its value (a header that decodes wrongly would only fail the HMAC).
    @Test func hexDecodingAcceptsExactlyTheHexDigits() {
        let digits = Array("0123456789abcdef".utf8)
        for byte in UInt8(0)..<128 {
            let value = digits.firstIndex(of: byte | (byte >= 0x41 && byte <= 0x46 ? 0x20 : 0)).map(UInt8.init)
            let character = String(UnicodeScalar(byte))
            #expect(Hex.decode(character + "7", byteCount: 1) == value.map { [$0 << 4 | 7] }, "high digit \(byte)")
            #expect(Hex.decode("7" + character, byteCount: 1) == value.map { [0x70 | $0] }, "low digit \(byte)")
        }
        #expect(Hex.decode(" \t0aFf9B\t ", byteCount: 3) == [0x0A, 0xFF, 0x9B])
        #expect(Hex.decode("0aff9", byteCount: 3) == nil)
        #expect(Hex.decode("é0", byteCount: 1) == nil)
        #expect(Hex.decode("", byteCount: 0) == [])
    }

    @Test func malformedHeadersAreInvalidNotCrashes() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["secret"])
        let vector = Self.vectorSHA256
        var headers: [String] = ["", "zz", String(vector.dropLast()), vector + "0", "sha256=" + vector,
                                 String(repeating: "g", count: 64), "é" + String(vector.dropFirst(2))]
        // The bytes on either side of each digit range, first and last; a NUL.
        for outside in ["/", ":", "@", "G", "`", "g"] {
            headers.append(outside + String(vector.dropFirst()))
            headers.append(String(vector.dropLast()) + outside)
        }
        headers.append(String(vector.dropLast()) + "\u{0}")
        for header in headers {
            #expect(verifier.verify(body: body, v1: nil, v2: header) == .invalid(.v2))
        }
        // base64 of the right digest is not accepted (Agora uses hex).
        #expect(verifier.verify(body: body, v1: nil, v2: "bTMgxgsREBOVt/yPkGh0iAigqhv6BkQ4459KKcfXTZk=") == .invalid(.v2))
    }

    @Test func rotationAcceptsEverySecret() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["new-secret", "secret"])
        #expect(verifier.secretCount == 2)
        #expect(verifier.verify(body: body, v1: nil, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 1))
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: nil) == .valid(.v1, secretIndex: 1))
        let signedWithNew = SignatureVerifier.sign(body: body, secret: "new-secret")
        #expect(verifier.verify(body: body, v1: nil, v2: signedWithNew.v2) == .valid(.v2, secretIndex: 0))
        #expect(SignatureVerifier(secrets: ["other"]).verify(body: body, v1: nil, v2: Self.vectorSHA256) == .invalid(.v2))
        #expect(SignatureVerifier(secrets: []).verify(body: body, v1: nil, v2: Self.vectorSHA256) == .invalid(.v2))
    }

    @Test func anyValidPolicy() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["secret"], policy: .anyValid)
        let badV2 = String(repeating: "0", count: 64)
        let badV1 = String(repeating: "0", count: 40)
        #expect(verifier.verify(body: body, v1: nil, v2: nil) == .missing)
        // A present-but-wrong header does not veto a valid one.
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: badV2) == .valid(.v1, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: badV1, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 0))
        #expect(verifier.verify(body: body, v1: badV1, v2: badV2) == .invalid(.v2))
        #expect(verifier.verify(body: body, v1: badV1, v2: nil) == .invalid(.v1))
    }

    @Test func requireV2Policy() throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["secret"], policy: .requireV2)
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: nil) == .missing)
        #expect(verifier.verify(body: body, v1: nil, v2: nil) == .missing)
        #expect(verifier.verify(body: body, v1: Self.vectorSHA1, v2: String(repeating: "0", count: 64)) == .invalid(.v2))
        #expect(verifier.verify(body: body, v1: nil, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 0))
        #expect(SignaturePolicy(rawValue: "v2") == .requireV2)
        #expect(SignaturePolicy(rawValue: "any") == .anyValid)
        #expect(SignatureVersion.v2.rawValue == "Agora-Signature-V2")
    }

    @Test func syntheticBodiesVerify() throws {
        let manifest = try FixtureFiles.json("agora-synthetic/signatures.json")
        let secret = try #require(manifest["secret"]?.stringValue)
        #expect(secret == "test-secret")
        let rows = try #require(manifest["bodies"]?.arrayValue)
        #expect(rows.count == 9)
        let verifier = SignatureVerifier(secrets: ["wrong", secret])
        for row in rows {
            let file = try #require(row["file"]?.stringValue)
            let body = try FixtureFiles.bytes("agora-synthetic/\(file)")
            #expect(Int64(body.count) == row["bytes"]?.int64Value, "\(file)")
            let v1 = try #require(row["v1"]?.stringValue)
            let v2 = try #require(row["v2"]?.stringValue)
            let signed = SignatureVerifier.sign(body: body, secret: secret)
            #expect(signed.v1 == v1 && signed.v2 == v2, "\(file)")
            #expect(verifier.verify(body: body, v1: v1, v2: v2) == .valid(.v2, secretIndex: 1), "\(file)")
            #expect(verifier.verify(body: body, v1: v1, v2: nil) == .valid(.v1, secretIndex: 1), "\(file)")
        }
    }

    @Test func concurrentVerificationIsConsistent() async throws {
        let body = try FixtureFiles.bytes("signature/test_vector_body.json")
        let verifier = SignatureVerifier(secrets: ["a", "b", "secret"])
        let results = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<64 {
                group.addTask {
                    let ok = verifier.verify(body: body, v1: nil, v2: Self.vectorSHA256) == .valid(.v2, secretIndex: 2)
                    var tampered = body
                    tampered[i % body.count] ^= 0x20
                    let bad = verifier.verify(body: tampered, v1: nil, v2: Self.vectorSHA256) == .invalid(.v2)
                    return ok && bad
                }
            }
            var all: [Bool] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 64 && results.allSatisfy { $0 })
    }
}
