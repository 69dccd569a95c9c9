// Package notify tells people what the daemon did (run --notify-url,
// --notify-slack-url): drift corrected and by whom, revisions accepted or
// refused, grants started and ended, break-glass, the mass-removal breaker,
// cfaccess's token used elsewhere, leadership changes. Each event is a
// CloudEvents 1.0 JSON POST, signed with HMAC-SHA256 when a secret is
// given, or a Slack incoming-webhook message. Delivery never blocks the
// loop: a bounded queue, retries with backoff, drops counted. Emails are
// masked unless asked for; no credential is ever in an event.
package notify
