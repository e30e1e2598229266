// Package words embeds the passkey filler word list: SCOWL's American
// English list as Debian's wamerican ships it, kept to the words of the
// letters a–z. README.md says how it was made; LICENSE holds its copyright
// and permission notices.
package words

import _ "embed"

// Text is the word list, one word a line, in its original order.
//
//go:embed words.txt
var Text string
