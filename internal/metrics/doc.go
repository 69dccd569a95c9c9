// Package metrics defines cfaccess's Prometheus metrics (SPEC §5), all
// registered on a registry the caller owns. No label holds an email or any
// other personal data: accounts are provider ids, endpoints are templates.
package metrics
