package desired

import _ "embed"

// Schema is a JSON Schema (draft-07) of one declaration document, for
// editors (yaml-language-server). It checks shape; Load checks everything.
//
//go:embed schema.json
var Schema []byte
