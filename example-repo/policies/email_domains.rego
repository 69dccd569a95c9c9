# Members come from the company's own domain. People from partner agencies
# may be granted access too, but only for a bounded time.
package cfaccess.local.email_domains

company_domains := {"example.com"}

partner_domains := {"partner.example.net"}

domain(email) := split(email, "@")[1]

deny contains {"msg": msg, "source": b.source} if {
	some b in input.bindings
	d := domain(b.email)
	not company_domains[d]
	not partner_domains[d]
	msg := sprintf("%s is not from an allowed domain (%s): ask security to add the domain to policies/email_domains.rego", [b.email, concat(", ", sort(company_domains | partner_domains))])
}

deny contains {"msg": msg, "source": b.source} if {
	some b in input.bindings
	partner_domains[domain(b.email)]
	b.expires == ""
	msg := sprintf("%s is from a partner domain: partner access needs expires", [b.email])
}
