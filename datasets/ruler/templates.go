package ruler

import (
	"fmt"
	"strings"
)

// The templates below are RULER's, reproduced exactly for comparability
// (source: scripts/data/synthetic/constants.py and the generators beside it
// in the public NVIDIA/RULER repository). {context}, {query} and the other
// names in braces are placeholders. A prompt is the task template, then the
// answer prefix; a chat template, when given, wraps the task template only,
// and the answer prefix follows it, as RULER's prepare.py builds it.

// Needle-in-a-haystack prompts.
const (
	niahTemplate = "Some special magic {type_needle_v} are hidden within the following text. " +
		"Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n" +
		"{context}\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
	niahPrefix = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
	// NeedleTemplate is the sentence that hides one value; {type_needle_v}
	// stays plural ("numbers") even when one value is asked for.
	needleTemplate = "One of the special magic {type_needle_v} for {key} is: {value}."
)

// NoiseSentences is the noise haystack's unit, repeated one a line.
const NoiseSentences = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

// Variable-tracking prompts.
const (
	vtTemplate = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n" +
		"{context}\nQuestion: Find all variables that are assigned the value {query} in the text above."
	vtPrefix = " Answer: According to the chain(s) of variable assignment in the text above, " +
		"{num_v} variables are assigned the value {query}, they are: "
	// vtExampleLength is the length in tokens of the worked example RULER
	// puts in front of every variable-tracking prompt.
	vtExampleLength = 500
)

// Common-word extraction prompts.
const (
	cweTemplate = "Below is a numbered list of words. In these words, some appear more often than others. " +
		"Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?"
	cwePrefix = " Answer: The top 10 words that appear most often in the list are:"
)

// Frequent-word extraction prompts.
const (
	fweTemplate = "Read the following coded text and track the frequency of each coded word. " +
		"Find the three most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. " +
		"Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?"
	fwePrefix = " Answer: According to the coded text above, the three most frequently appeared words are:"
	// fweWordLen and fweVocabDivisor are RULER's coded_wordlen and its
	// vocabulary size, one coded word per 50 tokens of the length.
	fweWordLen      = 6
	fweVocabDivisor = 50
)

// QA prompts.
const (
	qaTemplate = "Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\n" +
		"The following are given documents.\n\n{context}\n\n" +
		"Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\n" +
		"Question: {query}"
	qaPrefix   = " Answer:"
	qaDocument = "Document {i}:\n{document}"
)

// fill replaces each "{name}" of tmpl by its value in one pass, so that
// values are never scanned for placeholders.
func fill(tmpl string, kv ...string) string {
	pairs := make([]string, 0, len(kv))
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1])
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// singular rewrites the needle template and prefix for one answer, as
// RULER does when num_needle_q × num_needle_v is 1 ("A special magic
// number is hidden …").
func singular(s string) string {
	s = strings.ReplaceAll(s, "Some", "A")
	s = strings.ReplaceAll(s, "are all", "is")
	s = strings.ReplaceAll(s, "are", "is")
	return strings.ReplaceAll(s, "answers", "answer")
}

// ApplyTemplate puts text into a chat template at its single "{prompt}"
// placeholder. An empty template returns text unchanged.
func ApplyTemplate(template, text string) (string, error) {
	if template == "" {
		return text, nil
	}
	if n := strings.Count(template, "{prompt}"); n != 1 {
		return "", fmt.Errorf("ruler: chat template must contain {prompt} exactly once, found %d", n)
	}
	return strings.Replace(template, "{prompt}", text, 1), nil
}

// joinQuery joins keys as RULER's query: "a", "a, and b", "a, b, and c".
func joinQuery(keys []string) string {
	if len(keys) == 1 {
		return keys[0]
	}
	return strings.Join(keys[:len(keys)-1], ", ") + ", and " + keys[len(keys)-1]
}
