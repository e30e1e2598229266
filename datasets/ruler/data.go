package ruler

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"kvcascade/datasets/longtext"
)

// The embedded word lists: common English adjectives, nouns and verbs, one
// a line, written for this project.
var (
	//go:embed words/adjectives.txt
	adjectivesTxt string
	//go:embed words/nouns.txt
	nounsTxt string
	//go:embed words/verbs.txt
	verbsTxt string
)

// DefaultEssay is the essay-like haystack text used when the essay
// parameter is empty: the embedded public-domain text that is also the
// quickstart's perplexity text (the tiny model's held-out books of the
// King James Bible), so that nothing outside the binary is needed.
const DefaultEssay = longtext.EmbeddedPrefix + "kjv-heldout"

// Words are the vocabularies the generator draws from.
type Words struct {
	// Adjectives and Nouns make the word keys and values ("bold-tiger").
	Adjectives, Nouns []string
	// All is every distinct word, sorted: common-word extraction and the
	// word haystack draw from it.
	All []string
}

// EmbeddedWords returns the word lists embedded in the package.
func EmbeddedWords() *Words {
	adj := strings.Fields(adjectivesTxt)
	nouns := strings.Fields(nounsTxt)
	verbs := strings.Fields(verbsTxt)
	return newWords(adj, nouns, append(append(append([]string(nil), adj...), nouns...), verbs...))
}

func newWords(adj, nouns, all []string) *Words {
	set := map[string]bool{}
	var uniq []string
	for _, w := range all {
		if !set[w] {
			set[w] = true
			uniq = append(uniq, w)
		}
	}
	sort.Strings(uniq)
	return &Words{Adjectives: adj, Nouns: nouns, All: uniq}
}

// LoadWords reads a word list, one word a line (blank lines and lines with
// white space inside are skipped), as the vocabulary of every use: word
// keys pair two of its words.
func LoadWords(path string) (*Words, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ruler: word list: %w", err)
	}
	var words []string
	for i, line := range strings.Split(string(b), "\n") {
		w := strings.TrimSpace(line)
		if w == "" {
			continue
		}
		if strings.ContainsAny(w, " \t") {
			return nil, fmt.Errorf("ruler: word list %s:%d: %q is not one word", path, i+1, w)
		}
		words = append(words, w)
	}
	if len(words) < 2 {
		return nil, fmt.Errorf("ruler: word list %s: %d words, want at least 2", path, len(words))
	}
	return newWords(words, words, words), nil
}

// LoadEssay reads an essay-like text and returns its words (split at white
// space), the unit of the essay haystack.
// A path "embedded:NAME" names a text embedded in the binary
// (datasets/longtext).
func LoadEssay(path string) ([]string, error) {
	var text string
	if longtext.IsEmbedded(path) {
		t, err := longtext.EmbeddedText(path)
		if err != nil {
			return nil, fmt.Errorf("ruler: essay text: %w", err)
		}
		text = t
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("ruler: essay text: %w", err)
		}
		text = string(b)
	}
	words := strings.Fields(text)
	if len(words) == 0 {
		return nil, fmt.Errorf("ruler: essay text %s has no words", path)
	}
	return words, nil
}

// QAItem is one question of a QA set.
type QAItem struct {
	Question string
	// Answers are the reference answers.
	Answers []string
	// Gold are the indices in QASet.Docs of the paragraphs the question
	// comes with (SQuAD: its paragraph; HotpotQA: all of its context).
	Gold []int
	// More are other paragraphs of the same article (SQuAD), used as the
	// first distractors.
	More []int
}

// QASet is a QA file read as RULER reads it: distinct paragraphs, sorted,
// and the answerable questions in file order.
type QASet struct {
	// Format is "squad" or "hotpotqa".
	Format string
	Docs   []string
	Items  []QAItem
}

type squadFile struct {
	Data []struct {
		Paragraphs []struct {
			Context string `json:"context"`
			QAs     []struct {
				Question     string `json:"question"`
				IsImpossible bool   `json:"is_impossible"`
				Answers      []struct {
					Text string `json:"text"`
				} `json:"answers"`
			} `json:"qas"`
		} `json:"paragraphs"`
	} `json:"data"`
}

type hotpotItem struct {
	Question string            `json:"question"`
	Answer   string            `json:"answer"`
	Context  []json.RawMessage `json:"context"`
}

// LoadQA reads a QA file in SQuAD format (an object with "data") or
// HotpotQA format (an array of questions with "context" as [title,
// sentences] pairs).
func LoadQA(path string) (*QASet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ruler: QA file: %w", err)
	}
	b = bytes.TrimSpace(b)
	var set *QASet
	switch {
	case len(b) > 0 && b[0] == '{':
		set, err = readSQuAD(b)
	case len(b) > 0 && b[0] == '[':
		set, err = readHotpot(b)
	default:
		return nil, fmt.Errorf("ruler: QA file %s: neither SQuAD (a JSON object) nor HotpotQA (a JSON array)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("ruler: QA file %s: %w", path, err)
	}
	if len(set.Items) == 0 {
		return nil, fmt.Errorf("ruler: QA file %s: no answerable questions", path)
	}
	return set, nil
}

func readSQuAD(b []byte) (*QASet, error) {
	var f squadFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("SQuAD format: %w", err)
	}
	var docs []string
	for _, d := range f.Data {
		for _, p := range d.Paragraphs {
			docs = append(docs, p.Context)
		}
	}
	docs, index := sortedSet(docs)
	set := &QASet{Format: "squad", Docs: docs}
	for di, d := range f.Data {
		var article []int
		for _, p := range d.Paragraphs {
			article = append(article, index[p.Context])
		}
		for pi, p := range d.Paragraphs {
			self := index[p.Context]
			var more []int
			for _, i := range article {
				if i != self {
					more = append(more, i)
				}
			}
			for qi, q := range p.QAs {
				if q.IsImpossible {
					continue
				}
				var answers []string
				for _, a := range q.Answers {
					answers = append(answers, a.Text)
				}
				if len(answers) == 0 {
					return nil, fmt.Errorf("data[%d].paragraphs[%d].qas[%d]: no answers", di, pi, qi)
				}
				set.Items = append(set.Items, QAItem{Question: q.Question, Answers: answers, Gold: []int{self}, More: more})
			}
		}
	}
	return set, nil
}

func readHotpot(b []byte) (*QASet, error) {
	var items []hotpotItem
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("HotpotQA format: %w", err)
	}
	para := make([][]string, len(items))
	var docs []string
	for i, it := range items {
		for j, raw := range it.Context {
			var pair []json.RawMessage
			var title string
			var sents []string
			if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 ||
				json.Unmarshal(pair[0], &title) != nil || json.Unmarshal(pair[1], &sents) != nil {
				return nil, fmt.Errorf("item %d: context[%d]: want [title, [sentences]]", i, j)
			}
			d := title + "\n" + strings.Join(sents, "")
			para[i] = append(para[i], d)
			docs = append(docs, d)
		}
	}
	docs, index := sortedSet(docs)
	set := &QASet{Format: "hotpotqa", Docs: docs}
	for i, it := range items {
		if it.Question == "" || it.Answer == "" {
			return nil, fmt.Errorf("item %d: empty question or answer", i)
		}
		var gold []int
		for _, d := range para[i] {
			gold = append(gold, index[d])
		}
		set.Items = append(set.Items, QAItem{Question: it.Question, Answers: []string{it.Answer}, Gold: gold})
	}
	return set, nil
}

func sortedSet(s []string) ([]string, map[string]int) {
	sort.Strings(s)
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	index := make(map[string]int, len(out))
	for i, x := range out {
		index[x] = i
	}
	return out, index
}

// Sources are the texts a task draws from; Load fills what a task needs.
type Sources struct {
	// Words is the vocabulary; nil means EmbeddedWords.
	Words *Words
	// Essay is the essay haystack's words (LoadEssay).
	Essay []string
	// QA is the QA set of the qa family.
	QA *QASet
}

// pseudoWords extends vocab with generated pronounceable words (three
// consonant-vowel syllables, not already in vocab) until it has n words,
// for common-word extraction at lengths the word list cannot fill.
func pseudoWords(vocab []string, n int) []string {
	if len(vocab) >= n {
		return vocab
	}
	const cons, vows = "bdfgklmnprstvz", "aeiou"
	have := make(map[string]bool, len(vocab))
	for _, w := range vocab {
		have[w] = true
	}
	out := append([]string(nil), vocab...)
	syl := len(cons) * len(vows)
	for i := 0; len(out) < n; i++ {
		var b strings.Builder
		for k, x := 0, i; k < 3 || x > 0; k++ {
			s := x % syl
			x /= syl
			b.WriteByte(cons[s/len(vows)])
			b.WriteByte(vows[s%len(vows)])
		}
		if w := b.String(); !have[w] {
			have[w] = true
			out = append(out, w)
		}
	}
	return out
}
