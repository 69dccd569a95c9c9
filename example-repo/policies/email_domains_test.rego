package cfaccess.local.email_domains_test

import data.cfaccess.local.email_domains

binding(email, expires) := {"email": email, "expires": expires, "source": "grants/x.yaml:2"}

test_company_domain_allowed if {
	count(email_domains.deny) == 0 with input as {"bindings": [binding("alice@example.com", "")]}
}

test_other_domain_denied if {
	email_domains.deny == {{
		"msg": "eve@gmail.com is not from an allowed domain (example.com, partner.example.net): ask security to add the domain to policies/email_domains.rego",
		"source": "grants/x.yaml:2",
	}} with input as {"bindings": [binding("eve@gmail.com", "")]}
}

test_partner_needs_expiry if {
	count(email_domains.deny) == 1 with input as {"bindings": [binding("mallory@partner.example.net", "")]}
	count(email_domains.deny) == 0 with input as {"bindings": [binding("mallory@partner.example.net", "2027-01-06T00:00:00Z")]}
}

test_lookalike_domain_denied if {
	count(email_domains.deny) == 1 with input as {"bindings": [binding("eve@example.com.evil.io", "")]}
}
