#ifndef NCS_COPENSSL_SHIM_H
#define NCS_COPENSSL_SHIM_H
// Debian's OpenSSL (libssl-dev) for native TLS on the public listener. Swift cannot call
// OpenSSL's function-like macros, so the few the server needs are wrapped here.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/evp.h>

static inline int ncs_ssl_ctx_set_protocol_range(SSL_CTX *context, int minimum, int maximum) {
    return SSL_CTX_set_min_proto_version(context, minimum) == 1
        && SSL_CTX_set_max_proto_version(context, maximum) == 1;
}

/// What every server context gets, whatever its certificate:
/// - no renegotiation (TLS 1.2's renegotiation is a DoS lever and never needed by a webhook
///   client) and no compression (CRIME);
/// - the server's cipher order, so a client cannot steer towards the weakest common suite;
/// - a peer closing without close_notify reads as a clean end: requests are length-delimited,
///   so a missing alert cannot truncate anything accepted (OpenSSL 3 calls it an error);
/// - partial writes from a buffer that may move between retries: the connection writes from
///   a growable array and retries a blocked write with the same bytes at a new address;
/// - read and write buffers released while a keep-alive connection idles (34 KiB each).
static inline void ncs_ssl_ctx_apply_server_defaults(SSL_CTX *context) {
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE
        | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}

#endif
