// Package report renders checks, plans, access reviews and change
// evidence for people and machines: text (coloured on a terminal), JSON,
// CSV, markdown for a pull-request comment, and SARIF for code scanning.
// Each is one document, built once — a plan's PlanDoc (NewPlanDoc), a
// review's review.Doc, a report's EvidenceDoc — that every format renders.
// Every string a repository or an account supplies is escaped here, in
// every format. A saved plan (plan --out, apply FILE) is a plan's
// document kept in a file: its changes' lines, and the live state's; a
// fresh plan's Differences say what no longer holds. It renders and
// compares; it decides nothing.
package report
