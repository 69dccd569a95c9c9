package cfaccess.builtin.super_admin_test

import data.cfaccess.builtin.super_admin

binding(role, resource) := {
	"provider": "prod", "email": "a@example.com", "role": "root",
	"cloudflare_role": role, "resource": resource, "active": true,
	"expires": "", "source": "grants.yaml:3",
}

test_current_name_on_account_denied if {
	d := super_admin.deny with input as {"bindings": [binding("Super Administrator - All Privileges", "account:*")]}
	d == {{"msg": "role \"root\" grants \"Super Administrator - All Privileges\" on the whole account to a@example.com: keep Super Administrator for the protected owner and grant a narrower role such as \"Administrator\"", "source": "grants.yaml:3"}}
}

test_former_name_and_star_denied if {
	count(super_admin.deny) == 1 with input as {"bindings": [binding("Super Administrator", "*")]}
}

test_on_one_zone_allowed if {
	count(super_admin.deny) == 0 with input as {"bindings": [binding("Super Administrator - All Privileges", "zone:example.com")]}
}

test_administrator_allowed if {
	count(super_admin.deny) == 0 with input as {"bindings": [binding("Administrator", "account:*")]}
}

test_inactive_grant_still_denied if {
	b := object.union(binding("Super Administrator", "account:*"), {"active": false})
	count(super_admin.deny) == 1 with input as {"bindings": [b]}
}
