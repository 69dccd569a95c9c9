// Package doctor checks, before cfaccess is trusted with writes, that a
// live account fits cfaccess's model of Cloudflare: the credentials, the
// account, the shape of every list it reads, the account's roles against
// the built-in catalogue, the rate-limit budget and the clock. It only
// reads: its transport (Probe) refuses any request but a GET before it
// leaves the process. What it saw can be written as a sanitized recording
// (Record) for a bug report, and served again (Replay).
package doctor
