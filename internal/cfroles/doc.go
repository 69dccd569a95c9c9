// Package cfroles is Cloudflare's catalogue of predefined roles, as an
// offline reference for validation: each role's scope (account or domain),
// the role of the other scope that does the same job, and former names.
// The account being reconciled is the authority: at plan time its own
// permission groups (meta.scopes) decide.
//
// Sources: developers.cloudflare.com fundamentals/manage-members/roles (the
// account-scoped and domain-scoped lists, account-role-names.txt and
// domain-role-names.txt) and /scope ("Roles can only ever be assigned to
// their given scope").
package cfroles
