# Nobody holds Super Administrator on the whole account through a user
# group the plan leaves them in: access through a group is as real as a
# grant (the guardrail on grants is super_admin.rego). Cloudflare shows
# a group's permissions nowhere on a member's page, so this is the access
# most easily missed. A plan that takes the member out of the group
# (prune_user_groups) or removes the member passes.
package cfaccess.builtin.user_groups

super_admin_names := {"Super Administrator - All Privileges", "Super Administrator"}

deny contains msg if {
	some provider, acct in input.live
	some m in acct.members
	some b in m.bindings
	startswith(b.via, "user group ")
	super_admin_names[b.cloudflare_role]
	b.resource == "account:*"
	not leaves(provider, m.email, b.via)
	msg := sprintf("%s holds %q on the whole account of %s through %s, which the repository does not manage: take them out of the group in Cloudflare, or set reconcile.prune_user_groups so that cfaccess does", [m.email, b.cloudflare_role, provider, b.via])
}

leaves(provider, email, via) if {
	some c in input.plan[provider].leave_group
	c.email == email
	via == sprintf("user group %s", [c.user_group])
}

leaves(provider, email, _) if {
	some c in input.plan[provider].remove
	c.email == email
}
