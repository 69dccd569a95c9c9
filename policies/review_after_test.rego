package cfaccess.builtin.review_after_test

import data.cfaccess.builtin.review_after

grant(review_after) := {
	"users": ["a@example.com"], "groups": ["sre"], "roles": ["dns"], "reason": "OPS-1",
	"not_before": "", "expires": "", "review_after": review_after, "active": true,
	"source": "grants.yaml:7",
}

test_overdue_warned if {
	w := review_after.warn with input as {"now": "2026-11-23T12:00:00Z", "grants": [grant("2026-10-01T00:00:00Z")]}
	w == {{"msg": "grant at grants.yaml:7 for a@example.com, group sre was due for review on 2026-10-01: confirm it is still needed and move review_after on, or remove the grant", "source": "grants.yaml:7"}}
}

test_due_from_the_instant if {
	count(review_after.warn) == 1 with input as {"now": "2026-10-01T00:00:00Z", "grants": [grant("2026-10-01T00:00:00Z")]}
	count(review_after.warn) == 0 with input as {"now": "2026-09-30T23:59:59Z", "grants": [grant("2026-10-01T00:00:00Z")]}
}

test_future_quiet if {
	count(review_after.warn) == 0 with input as {"now": "2026-11-23T12:00:00Z", "grants": [grant("2027-01-15T00:00:00Z")]}
}

test_unset_quiet if {
	g := object.remove(grant(""), ["review_after"])
	count(review_after.warn) == 0 with input as {"now": "2026-11-23T12:00:00Z", "grants": [grant(""), g]}
}

test_expired_grant_quiet if {
	g := object.union(grant("2026-10-01T00:00:00Z"), {"expires": "2026-11-01T00:00:00Z", "active": false})
	count(review_after.warn) == 0 with input as {"now": "2026-11-23T12:00:00Z", "grants": [g]}
}

test_time_of_day_kept if {
	some w in review_after.warn with input as {"now": "2026-11-23T12:00:00Z", "grants": [grant("2026-11-23T09:30:00Z")]}
	contains(w.msg, "due for review on 2026-11-23T09:30:00Z:")
}

test_many_users_shortened if {
	g := object.union(grant("2026-10-01T00:00:00Z"), {"users": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"], "groups": []})
	some w in review_after.warn with input as {"now": "2026-11-23T12:00:00Z", "grants": [g]}
	contains(w.msg, "for a@x.io, b@x.io, c@x.io, d@x.io, e@x.io and 1 more was due")
}
