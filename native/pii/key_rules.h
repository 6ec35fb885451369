// Rules that act on an attribute's key rather than on its text.
//
// Deny-list (rule "sensitive_key"): the value is redacted whole, whatever it is, when the key's
// header name (the part after http.request.header., http.response.header.,
// rpc.grpc.request.metadata. and the like) or otherwise its last dot-separated segment, compared
// ignoring case and with '-' read as '_',
//   - is authorization, proxy_authorization, cookie, cookies, set_cookie or x_api_key, or
//   - contains password, passwd, secret, api_key, apikey or private_key, or
//   - has "token" ending one of its '_'-separated parts (access_token, csrftoken,
//     x_auth_token; but not input_tokens or max_tokens, which are counts on GenAI spans).
// Rule "client_address" (gdpr): client.address and its older spellings (client.socket.address,
// http.client_ip, net.sock.peer.addr, net.peer.ip).
// Rule "enduser" (gdpr, pseudonymised when a key is configured): enduser.* and user.*.
//
// Allow-list: keys whose values are structural, never personal, skip every value detector:
// trace and span ids (any key ending in trace_id or span_id), code.*, and db.system(.name),
// db.operation.name, db.collection.name, http.route, http.request.method,
// http.response.status_code, url.scheme, server.port, network.protocol.name,
// network.protocol.version, network.transport, network.type, messaging.system, rpc.system,
// rpc.service, rpc.method, otel.scope.name, otel.status_code, thread.name. A deny rule wins over
// an allow rule.
#pragma once

#include <string_view>

namespace djtrace::pii {

bool IsSensitiveAttributeKey(std::string_view key) noexcept;
bool IsClientAddressKey(std::string_view key) noexcept;
bool IsEnduserKey(std::string_view key) noexcept;
bool IsBuiltinAllowedKey(std::string_view key) noexcept;

}  // namespace djtrace::pii
