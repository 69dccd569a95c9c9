// Package policy evaluates cfaccess guardrails: OPA Rego modules, the
// built-in ones compiled into the binary plus an access repository's own
// policies/*.rego, in-process with a prepared query.
//
// Every package under cfaccess. may define deny and warn; an element is a
// string or an object {"msg": ..., "source": "file:line"}. Guardrails run
// without network or environment access: http.send, net.lookup_ip_addr,
// opa.runtime and time.now_ns are not available to them (input.now is the
// instant under evaluation).
package policy
