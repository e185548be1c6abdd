package protocol

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// docExample is one ```json block of docs/protocol.md and the message its marker names.
type docExample struct {
	message string
	line    int
	body    string
}

// docExamples extracts every ```json block of the document and the `<!-- message: Name -->`
// marker before it. A json block without a marker is an error: every example must be checked.
func docExamples(t *testing.T, path string) []docExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []docExample
		marker  string
		inBlock bool
		cur     docExample
		body    strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case inBlock && trimmed == "```":
			inBlock = false
			cur.body = body.String()
			out = append(out, cur)
		case inBlock:
			body.WriteString(line)
			body.WriteByte('\n')
		case strings.HasPrefix(trimmed, "<!-- message:") && strings.HasSuffix(trimmed, "-->"):
			marker = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(trimmed, "<!-- message:"), "-->"))
		case trimmed == "```json":
			if marker == "" {
				t.Errorf("%s:%d: json block without a <!-- message: Name --> marker", path, n)
			}
			inBlock, cur = true, docExample{message: marker, line: n}
			body.Reset()
			marker = ""
		case trimmed != "":
			marker = "" // a marker applies to the block right after it
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inBlock {
		t.Errorf("%s: unterminated json block at line %d", path, cur.line)
	}
	return out
}

// TestDocExamplesDecode decodes every example of docs/protocol.md with the decoder its marker
// names, and checks that every decoder has at least one example.
func TestDocExamplesDecode(t *testing.T) {
	const path = "../../docs/protocol.md"
	examples := docExamples(t, path)
	seen := map[string]int{}
	for _, ex := range examples {
		decode, ok := decoders[ex.message]
		if !ok {
			t.Errorf("%s:%d: marker names unknown message %q", path, ex.line, ex.message)
			continue
		}
		seen[ex.message]++
		if _, err := decode([]byte(ex.body)); err != nil {
			t.Errorf("%s:%d: %s example does not decode: %v", path, ex.line, ex.message, err)
		}
	}
	for name := range decoders {
		if seen[name] == 0 {
			t.Errorf("%s has no example of %s", path, name)
		}
	}
}
