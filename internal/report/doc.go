// Package report renders checks and plans for people and machines: text
// (coloured on a terminal), JSON, markdown for a pull-request comment, and
// SARIF for code scanning. Every string a repository or an account supplies
// is escaped here, in every format. It renders; it decides nothing.
package report
