package signal

import (
	"encoding/json"
	"fmt"
)

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func sprint(v any) string { return fmt.Sprintf("%+v", v) }
