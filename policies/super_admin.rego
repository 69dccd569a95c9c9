# Nobody is granted Super Administrator on the whole account through the
# repository: that role can remove every other member, billing included.
# The account's owner keeps it as a protected member (reconcile.protected).
package cfaccess.builtin.super_admin

# Cloudflare renamed "Super Administrator" to
# "Super Administrator - All Privileges"; both names are matched.
super_admin_names := {"Super Administrator - All Privileges", "Super Administrator"}

whole_account := {"*", "account:*"}

deny contains {"msg": msg, "source": b.source} if {
	some b in input.bindings
	super_admin_names[b.cloudflare_role]
	whole_account[b.resource]
	msg := sprintf("role %q grants %q on the whole account to %s: keep Super Administrator for the protected owner and grant a narrower role such as \"Administrator\"", [b.role, b.cloudflare_role, b.email])
}
