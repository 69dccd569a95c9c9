# Nobody holds Super Administrator on the whole account through a user
# group the plan leaves them in: access through a group is as real as a
# grant (the guardrail on grants is super_admin.rego), and Cloudflare shows
# a group's permissions nowhere on a member's page. A plan that takes the
# member out of the group, removes the member, or takes the role off a
# mirrored group passes; protected members (the owner, break-glass
# accounts) are theirs to keep.
#
# This guardrail is on the live state, not the repository: its denial
# holds back the changes that give access, and lets those that take it
# away (expiries included) go on.
package cfaccess.builtin.user_groups

super_admin_names := {"Super Administrator - All Privileges", "Super Administrator"}

deny contains msg if {
	some provider, acct in input.live
	some m in acct.members
	not m.protected
	some b in m.bindings
	startswith(b.via, "user group ")
	super_admin_names[b.cloudflare_role]
	b.resource == "account:*"
	not leaves(provider, m.email, b.via)
	not taken_off(provider, b.via)
	msg := sprintf("%s holds %q on the whole account of %s through %s: take them out of the group or the role off it in Cloudflare (for a member the repository declares, reconcile.prune_user_groups lets cfaccess take them out). Until then no change that gives access is applied", [m.email, b.cloudflare_role, provider, b.via])
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

# A mirrored group the plan takes the role off.
taken_off(provider, via) if {
	some c in input.plan[provider].update_user_group
	via == sprintf("user group %s", [c.user_group])
	some r in c.remove
	super_admin_names[r.cloudflare_role]
}
