package fake

import (
	"net/http"
	"strings"
)

// Multi serves several fake accounts behind one API, as one user with
// access to all of them sees it: /accounts/{id}/… goes to that account,
// /zones?account.id= too; user-level endpoints go to the first.
func Multi(accounts ...*Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, BasePath)
		id := r.URL.Query().Get("account.id")
		if rest, ok := strings.CutPrefix(path, "/accounts/"); ok {
			id, _, _ = strings.Cut(rest, "/")
		}
		for _, s := range accounts {
			if s.AccountID() == id {
				s.ServeHTTP(w, r)
				return
			}
		}
		if id == "" && len(accounts) > 0 {
			accounts[0].ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
	})
}
