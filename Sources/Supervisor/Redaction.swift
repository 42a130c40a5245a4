import NCS

/// Blanks credentials in a clientRequest before it goes into an answer, a log line or an event:
/// storage keys, STS tokens, the RTC token, decryption secrets.
public enum Redaction {
    static let secretKeys: Set<String> = [
        "accesskey", "secretkey", "ststoken", "token", "secret", "salt", "password", "passwd", "apikey",
        "credential", "credentials", "privatekey", "sastoken", "authorization",
    ]
    public static let placeholder = "[redacted]"

    public static func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let object):
            var out = JSONObject()
            for member in object {
                if secretKeys.contains(member.key.lowercased()), !member.value.isNull {
                    out.append(member.key, .string(placeholder))
                } else {
                    out.append(member.key, redact(member.value))
                }
            }
            return .object(out)
        case .array(let items):
            return .array(items.map(redact))
        default:
            return value
        }
    }

    /// Redacted JSON text; unparsable text is replaced whole (it might be anything).
    public static func redact(jsonText: String) -> JSONValue {
        guard let value = try? JSONValue.parse(jsonText) else { return .string(placeholder) }
        return redact(value)
    }
}
