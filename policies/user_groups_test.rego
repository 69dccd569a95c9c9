package cfaccess.builtin.user_groups_test

import data.cfaccess.builtin.user_groups

admin_via_group := {"email": "eve@example.com", "status": "accepted", "two_factor": true, "bindings": [
	{"cloudflare_role": "Super Administrator - All Privileges", "resource": "account:*", "via": "user group admins"},
	{"cloudflare_role": "DNS", "resource": "account:*", "via": "direct"},
]}

test_denied_through_a_group if {
	count(user_groups.deny) == 1 with input as {"live": {"prod": {"members": [admin_via_group]}}, "plan": {"prod": {"remove": [], "leave_group": []}}}
}

test_direct_super_admin_is_not_this_rule if {
	m := {"email": "owner@example.com", "bindings": [{"cloudflare_role": "Super Administrator - All Privileges", "resource": "account:*", "via": "direct"}]}
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [m]}}, "plan": {"prod": {}}}
}

test_passes_when_the_plan_takes_them_out if {
	plan := {"prod": {"remove": [], "leave_group": [{"email": "eve@example.com", "user_group": "admins", "add": [], "remove": []}]}}
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [admin_via_group]}}, "plan": plan}
}

test_passes_when_the_plan_removes_them if {
	plan := {"prod": {"remove": [{"email": "eve@example.com", "add": [], "remove": []}], "leave_group": []}}
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [admin_via_group]}}, "plan": plan}
}

test_a_zone_is_not_the_account if {
	m := {"email": "eve@example.com", "bindings": [{"cloudflare_role": "Super Administrator - All Privileges", "resource": "zone:example.com", "via": "user group x"}]}
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [m]}}, "plan": {"prod": {}}}
}

test_protected_members_keep_it if {
	m := object.union(admin_via_group, {"protected": true})
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [m]}}, "plan": {"prod": {}}}
}

test_passes_when_the_plan_takes_the_role_off_the_group if {
	plan := {"prod": {"update_user_group": [{"email": "", "user_group": "admins", "add": [], "remove": [{"cloudflare_role": "Super Administrator - All Privileges", "resource": "account:*"}]}]}}
	count(user_groups.deny) == 0 with input as {"live": {"prod": {"members": [admin_via_group]}}, "plan": plan}
}
