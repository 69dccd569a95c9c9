# Standing administrator access is the access attackers want most; grant it
# for a bounded time (expires), or just in time.
package cfaccess.builtin.admin_expiry

# is_admin matches Cloudflare's administrator roles ("Administrator",
# "Super Administrator - All Privileges", "Workers Platform Admin",
# "Cloudflare R2 Admin", ...) but not their read-only variants.
is_admin(name) if {
	contains(lower(name), "admin")
	not read_only(name)
}

read_only(name) if regex.match(`(?i)read[ -]?only|readonly|\bread\b`, name)

warn contains {"msg": msg, "source": b.source} if {
	some b in input.bindings
	b.expires == ""
	is_admin(b.cloudflare_role)
	msg := sprintf("role %q gives the administrator role %q with no expires: give standing admin access an end date, or grant it just in time", [b.role, b.cloudflare_role])
}
