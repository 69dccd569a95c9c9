package cfaccess.builtin.admin_expiry_test

import data.cfaccess.builtin.admin_expiry

binding(role, expires) := {
	"provider": "prod", "email": "a@example.com", "role": "admins",
	"cloudflare_role": role, "resource": "account:*", "active": true,
	"expires": expires, "source": "grants.yaml:7",
}

test_admin_without_expiry_warned if {
	w := admin_expiry.warn with input as {"bindings": [binding("Administrator", "")]}
	w == {{"msg": "role \"admins\" gives the administrator role \"Administrator\" with no expires: give standing admin access an end date, or grant it just in time", "source": "grants.yaml:7"}}
}

test_admin_with_expiry_quiet if {
	count(admin_expiry.warn) == 0 with input as {"bindings": [binding("Administrator", "2026-12-24T18:00:00Z")]}
}

test_other_admin_roles_warned if {
	count(admin_expiry.warn) == 2 with input as {"bindings": [
		binding("Workers Platform Admin", ""),
		binding("Cloudflare R2 Admin", ""),
	]}
}

test_read_only_quiet if {
	count(admin_expiry.warn) == 0 with input as {"bindings": [
		binding("Administrator Read Only", ""),
		binding("Cloudchamber Admin Read Only", ""),
		binding("Magic Network Monitoring Read-Only", ""),
		binding("DNS", ""),
	]}
}

test_one_warning_per_grant_and_role if {
	b2 := object.union(binding("Administrator", ""), {"email": "b@example.com"})
	count(admin_expiry.warn) == 1 with input as {"bindings": [binding("Administrator", ""), b2]}
}
