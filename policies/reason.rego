# Every grant says why it exists, so reviewers and audit records can tell.
package cfaccess.builtin.reason

warn contains {"msg": "grant has no reason: say why it exists (a ticket, a rotation, a team) for reviewers and audit records", "source": g.source} if {
	some g in input.grants
	trim_space(object.get(g, "reason", "")) == ""
}
