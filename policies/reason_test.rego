package cfaccess.builtin.reason_test

import data.cfaccess.builtin.reason

test_missing_reason_warned if {
	count(reason.warn) == 1 with input as {"grants": [{"roles": ["dns"], "users": ["a@example.com"], "source": "grants.yaml:1"}]}
}

test_blank_reason_warned if {
	count(reason.warn) == 1 with input as {"grants": [{"reason": "   ", "source": "grants.yaml:1"}]}
}

test_reason_quiet if {
	count(reason.warn) == 0 with input as {"grants": [{"reason": "OPS-1234 on-call", "source": "grants.yaml:1"}]}
}
