// Package passkey builds the passkey retrieval task of the paper: a long
// prompt of random dictionary words with a five-digit key hidden at a chosen
// depth, and a question asking for the key.
//
// Every prompt has the same layout:
//
//	<Prefix>\n\n<filler before> <key block> <filler after>\n\n<Question>
//
// where the filler is random words from a word list joined by single
// spaces, the key block states the key several times ("The pass key is
// 71432. Remember it. 71432 is the pass key." three times), and a missing
// filler part drops its separating space. Document appends " " and the key,
// so that training data shows the model exactly the text it is tested on.
//
// Generate picks the number of filler words so that the prompt has a given
// number of tokens of a given tokenizer, and is reproducible: the same
// (seed, length, depth bin, sample index) gives the same prompt and key.
// Score decides whether a model's continuation names the key.
package passkey

import (
	"fmt"
	"strings"
)

// Prefix is the instruction that opens every passkey prompt.
const Prefix = "There is an important piece of information hidden inside a lot of irrelevant text. " +
	"Find it and memorize it. I will quiz you about the important information there."

// Question closes every passkey prompt; the model's continuation should be
// the key.
const Question = "What is the pass key? The pass key is"

// KeyRepeats is the number of times the key block states the key sentence.
const KeyRepeats = 3

// Bins is the number of depth bins: bin b holds depths in
// [b/Bins, (b+1)/Bins), the last bin including 1.
const Bins = 5

// KeySentence returns the sentence that the key block repeats.
func KeySentence(key string) string {
	return "The pass key is " + key + ". Remember it. " + key + " is the pass key."
}

// KeyBlock returns the text inserted into the filler: the key sentence
// repeated KeyRepeats times, separated by spaces.
func KeyBlock(key string) string {
	s := KeySentence(key)
	var b strings.Builder
	for i := range KeyRepeats {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// Parts are the pieces of one passkey text before layout.
type Parts struct {
	// Key is the five-digit pass key.
	Key string
	// Filler holds the filler words in order.
	Filler []string
	// At is the number of filler words before the key block,
	// 0 ≤ At ≤ len(Filler).
	At int
}

// Depth returns the fraction of filler words that come before the key
// block; 0 when there is no filler.
func (p Parts) Depth() float64 {
	if len(p.Filler) == 0 {
		return 0
	}
	return float64(p.At) / float64(len(p.Filler))
}

// Prompt lays out p as a passkey prompt (see the package comment). It
// returns an error if p.At is out of range.
func Prompt(p Parts) (string, error) {
	if p.At < 0 || p.At > len(p.Filler) {
		return "", fmt.Errorf("passkey: key position %d outside the filler of %d words", p.At, len(p.Filler))
	}
	size := len(Prefix) + len(Question) + 4 + KeyRepeats*(len(KeySentence(p.Key))+1) + 1
	for _, w := range p.Filler {
		size += len(w) + 1
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(Prefix)
	b.WriteString("\n\n")
	writeWords(&b, p.Filler[:p.At])
	if p.At > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(KeyBlock(p.Key))
	if p.At < len(p.Filler) {
		b.WriteByte(' ')
	}
	writeWords(&b, p.Filler[p.At:])
	b.WriteString("\n\n")
	b.WriteString(Question)
	return b.String(), nil
}

// Document returns the prompt of p followed by a space and the key: one
// training document in exactly the layout the evaluation uses.
func Document(p Parts) (string, error) {
	s, err := Prompt(p)
	if err != nil {
		return "", err
	}
	return s + " " + p.Key, nil
}

func writeWords(b *strings.Builder, words []string) {
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
}

// ApplyTemplate puts prompt into a chat template at its single "{prompt}"
// placeholder. An empty template returns prompt unchanged.
func ApplyTemplate(template, prompt string) (string, error) {
	if template == "" {
		return prompt, nil
	}
	if n := strings.Count(template, "{prompt}"); n != 1 {
		return "", fmt.Errorf("passkey: template must contain {prompt} exactly once, found %d", n)
	}
	return strings.Replace(template, "{prompt}", prompt, 1), nil
}
