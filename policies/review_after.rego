# Access granted once is not access needed for ever: a grant may say when
# it is next due for review (review_after). From that instant (a date is
# 00:00 UTC, as for expires) until it is reviewed — review_after moved on —
# or removed, the grant is warned about. An expired grant gives nothing
# and is left alone. `reconciler review` marks the same grants overdue.
package cfaccess.builtin.review_after

warn contains {"msg": msg, "source": g.source} if {
	some g in input.grants
	due(g)
	msg := sprintf("grant at %s for %s was due for review on %s: confirm it is still needed and move review_after on, or remove the grant", [g.source, who(g), day(g.review_after)])
}

due(g) if {
	object.get(g, "review_after", "") != ""
	time.parse_rfc3339_ns(input.now) >= time.parse_rfc3339_ns(g.review_after)
	not expired(g)
}

expired(g) if {
	object.get(g, "expires", "") != ""
	time.parse_rfc3339_ns(input.now) >= time.parse_rfc3339_ns(g.expires)
}

# who names the grant's users and groups, the first five of them: a grant
# to hundreds would drown the message.
who(g) := concat(", ", names) if {
	all := array.concat(object.get(g, "users", []), [sprintf("group %s", [x]) | some x in object.get(g, "groups", [])])
	count(all) <= 5
	names := all
}

who(g) := sprintf("%s and %d more", [concat(", ", array.slice(all, 0, 5)), count(all) - 5]) if {
	all := array.concat(object.get(g, "users", []), [sprintf("group %s", [x]) | some x in object.get(g, "groups", [])])
	count(all) > 5
}

# day writes a date-only review_after as the date it was written as.
day(t) := substring(t, 0, 10) if endswith(t, "T00:00:00Z")

day(t) := t if not endswith(t, "T00:00:00Z")
