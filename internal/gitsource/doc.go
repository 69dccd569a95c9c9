// Package gitsource is where revisions come from: a followed Git repository
// (Remote: incremental fetches with go-git, OpenPGP signature checks,
// ancestry for refusing force-pushes, walking history back), a local
// directory read as it is (Directory), a shallow clone for one-off
// commands, the Git hosts' webhooks and an fsnotify watch.
package gitsource
