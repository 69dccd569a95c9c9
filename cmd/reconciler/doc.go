// Command reconciler keeps Cloudflare account members equal to what a Git
// repository declares. See the README and `reconciler --help`.
package main
