// Package ruler generates the synthetic tasks of RULER (Hsieh et al., "RULER:
// What's the Real Context Size of Your Long-Context Language Models?", 2024)
// locally and scores a model's answers as RULER does.
//
// RULER's thirteen tasks need no download except its two QA sets: haystacks
// and needles are generated. The families are
//
//   - needle in a haystack (niah): one or several "One of the special magic
//     numbers for KEY is: VALUE." sentences hidden in a haystack of repeated
//     noise sentences ("The grass is green. The sky is blue. …"), of an
//     essay-like text, or of distractor needles; keys are adjective-noun
//     words or UUIDs, values seven-digit numbers, words or UUIDs; variants
//     with several keys (multikey), several values per key (multivalue)
//     and several queried keys (multiquery);
//   - variable tracking (vt): a chain of assignments "VAR ABCDE = 12345",
//     "VAR FGHIJ = VAR ABCDE", … in noise, with one worked example in front;
//     the answer is every variable of the chain;
//   - common-word extraction (cwe): a numbered list of words in which ten
//     appear far more often than the rest, with one worked example;
//   - frequent-word extraction (fwe): coded six-letter words drawn from a
//     Zipf distribution; the answer is the three most frequent (the most
//     frequent being the noise "...");
//   - QA over a SQuAD- or HotpotQA-format JSON file the user supplies: the
//     gold paragraphs among distractor paragraphs of the same set.
//
// Task templates, answer prefixes, needle sentences, task parameters and
// answer lengths are RULER's, as found in its public generator
// (scripts/data/synthetic/constants.py and scripts/synthetic.yaml of
// NVIDIA/RULER), so that scores are comparable; the code is this
// project's own. Scoring is RULER's: string_match_all (the fraction of
// reference strings found in the prediction, case-insensitive) for every
// family but QA, which uses string_match_part (1 when any reference is
// found).
//
// Lengths are token-exact with the model's tokenizer, as in RULER: the
// haystack is the largest (found by a search over its size) whose full
// prompt, counted with the BOS token, plus the answer tokens fits the
// requested length. Generation is deterministic: the same seed, task,
// length and sample index always give the same prompt. All randomness of a
// sample is drawn before its size is searched and the haystack of size n+1
// extends that of size n (up to the order of the shuffled lists of cwe,
// fwe and qa), so the prompt grows with the size and the search finds the
// largest size that fits.
//
// Where this package departs from RULER's generator: sentences of the essay
// haystack are split by a simple rule (after '.', '!' or '?' and white
// space) instead of NLTK's Punkt; keys and words come from word lists
// embedded here (common English adjectives, nouns and verbs written for this
// project, extended with generated pseudo-words when a task needs more)
// instead of the wonderwords lists; the haystack size is searched per
// sample rather than once per task and length; and the default essay text
// is not Paul Graham's essays but a text file the user names (by default
// the embedded public-domain text the quickstart's perplexity uses,
// embedded:kjv-heldout). The task niah_single_words (a haystack of random words, word keys
// and word values) is this project's addition, not one of RULER's.
package ruler

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sort"
	"strings"

	"kvcascade/datasets/internal/seeded"
)

// Tokenizer counts the tokens of a text. The project's
// runtime/tokenizer.Tokenizer satisfies it.
type Tokenizer interface {
	// Encode returns the ids of text, with the model's special tokens (BOS)
	// when addSpecial is set.
	Encode(text string, addSpecial bool) []int32
}

// Task families, named as in RULER's constants.
const (
	FamilyNIAH = "niah"
	FamilyVT   = "variable_tracking"
	FamilyCWE  = "common_words_extraction"
	FamilyFWE  = "freq_words_extraction"
	FamilyQA   = "qa"
)

// Metric names, as in RULER's evaluation.
const (
	MatchAll  = "string_match_all"
	MatchPart = "string_match_part"
)

// Haystack kinds of the needle tasks.
const (
	HaystackNoise  = "noise"  // the noise sentences repeated, one a line
	HaystackEssay  = "essay"  // words of an essay-like text file
	HaystackNeedle = "needle" // distractor needles, one a line
	HaystackWords  = "words"  // random words of the word list
)

// Needle key and value kinds.
const (
	KindNumbers = "numbers" // seven-digit numbers
	KindWords   = "words"   // adjective-noun words ("bold-tiger")
	KindUUIDs   = "uuids"   // version-4 UUIDs
)

// Task is one RULER task: its family, its parameters and how it is scored.
type Task struct {
	// Name is the task's name in RULER ("niah_single_1", "vt", …).
	Name string
	// Family is one of the Family constants.
	Family string
	// Metric is MatchAll or MatchPart.
	Metric string
	// AnswerTokens is RULER's tokens_to_generate: the tokens generated for
	// the answer, and reserved for it within the length.
	AnswerTokens int

	// Haystack is the haystack kind of the niah and vt families.
	Haystack string
	// KeyKind and ValueKind are the needles' kinds (niah).
	KeyKind, ValueKind string
	// Keys, Values and Queries are RULER's num_needle_k, num_needle_v and
	// num_needle_q (niah).
	Keys, Values, Queries int

	// Chains and Hops are the variable chains and the assignments after
	// the first in each (vt).
	Chains, Hops int

	// Common is the number of common words; CommonRepeats and
	// UncommonRepeats how often each common and each other word appears
	// (cwe, at lengths of 4,096 tokens and more; shorter ones use 6 and 1).
	Common, CommonRepeats, UncommonRepeats int

	// Alpha is the Zipf exponent of the coded words (fwe).
	Alpha float64

	// Format is the QA file's format, "squad" or "hotpotqa" (qa).
	Format string
}

// Doc is a one-line description of t.
func (t Task) Doc() string {
	switch t.Family {
	case FamilyNIAH:
		return fmt.Sprintf("needle in a %s haystack: %d key(s) of %s, %d value(s) of %s each, %d queried",
			t.Haystack, t.Keys, t.KeyKind, t.Values, t.ValueKind, t.Queries)
	case FamilyVT:
		return fmt.Sprintf("variable tracking: %d chain(s) of %d hops in noise", t.Chains, t.Hops)
	case FamilyCWE:
		return fmt.Sprintf("common words: the %d words repeated %d times among words repeated %d times", t.Common, t.CommonRepeats, t.UncommonRepeats)
	case FamilyFWE:
		return fmt.Sprintf("frequent words: the 3 most frequent coded words of a Zipf(%g) text", t.Alpha)
	case FamilyQA:
		return fmt.Sprintf("QA over a %s-format file (parameter qa) among distractor paragraphs", t.Format)
	}
	return t.Family
}

// tasks are RULER's thirteen tasks (scripts/synthetic.yaml) and this
// project's word-haystack needle task.
var tasks = []Task{
	niah("niah_single_1", HaystackNoise, KindWords, KindNumbers, 1, 1, 1),
	niah("niah_single_2", HaystackEssay, KindWords, KindNumbers, 1, 1, 1),
	niah("niah_single_3", HaystackEssay, KindWords, KindUUIDs, 1, 1, 1),
	niah("niah_multikey_1", HaystackEssay, KindWords, KindNumbers, 4, 1, 1),
	niah("niah_multikey_2", HaystackNeedle, KindWords, KindNumbers, 1, 1, 1),
	niah("niah_multikey_3", HaystackNeedle, KindUUIDs, KindUUIDs, 1, 1, 1),
	niah("niah_multivalue", HaystackEssay, KindWords, KindNumbers, 1, 4, 1),
	niah("niah_multiquery", HaystackEssay, KindWords, KindNumbers, 1, 1, 4),
	{Name: "vt", Family: FamilyVT, Metric: MatchAll, AnswerTokens: 30, Haystack: HaystackNoise, Chains: 1, Hops: 4},
	{Name: "cwe", Family: FamilyCWE, Metric: MatchAll, AnswerTokens: 120, Common: 10, CommonRepeats: 30, UncommonRepeats: 3},
	{Name: "fwe", Family: FamilyFWE, Metric: MatchAll, AnswerTokens: 50, Alpha: 2},
	{Name: "qa_1", Family: FamilyQA, Metric: MatchPart, AnswerTokens: 32, Format: "squad"},
	{Name: "qa_2", Family: FamilyQA, Metric: MatchPart, AnswerTokens: 32, Format: "hotpotqa"},
	niah("niah_single_words", HaystackWords, KindWords, KindWords, 1, 1, 1),
}

func niah(name, haystack, key, value string, keys, values, queries int) Task {
	return Task{
		Name: name, Family: FamilyNIAH, Metric: MatchAll, AnswerTokens: 128,
		Haystack: haystack, KeyKind: key, ValueKind: value,
		Keys: max(keys, queries), Values: values, Queries: queries,
	}
}

// Tasks returns every task, RULER's thirteen in RULER's order, then
// niah_single_words.
func Tasks() []Task { return append([]Task(nil), tasks...) }

// Names returns the names of Tasks, in order.
func Names() []string {
	names := make([]string, len(tasks))
	for i, t := range tasks {
		names[i] = t.Name
	}
	return names
}

// Lookup returns the named task.
func Lookup(name string) (Task, error) {
	for _, t := range tasks {
		if t.Name == name {
			return t, nil
		}
	}
	return Task{}, fmt.Errorf("ruler: unknown task %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Rand returns the random stream of one sample: the same (seed, task,
// length, index) always gives the same stream.
func Rand(seed int64, task string, length, index int) *rand.Rand {
	parts := make([]uint64, 0, len(task)+2)
	for i := 0; i < len(task); i++ {
		parts = append(parts, uint64(task[i]))
	}
	return seeded.Stream(uint64(seed), append(parts, uint64(length), uint64(index))...)
}

// child returns a new stream seeded from rng, for draws whose number
// depends on the haystack size: each size restarts it from the same state.
func child(rng *rand.Rand) (a, b uint64) { return rng.Uint64(), rng.Uint64() }

func newRand(a, b uint64) *rand.Rand { return rand.New(rand.NewPCG(a, b)) }

// intn returns a uniform integer in [0, n) using only rng.Uint64, so that
// samples depend on nothing but the PCG stream (Lemire's method).
func intn(rng *rand.Rand, n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(rng.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(rng.Uint64(), un)
		}
	}
	return int(hi)
}

// uniform returns a uniform float64 in [0, 1).
func uniform(rng *rand.Rand) float64 { return float64(rng.Uint64()>>11) / (1 << 53) }

// shuffle permutes s in place (Fisher–Yates).
func shuffle[T any](rng *rand.Rand, s []T) {
	for i := len(s) - 1; i > 0; i-- {
		j := intn(rng, i+1)
		s[i], s[j] = s[j], s[i]
	}
}

// sampleInts returns k distinct integers of [0, n) in random order.
func sampleInts(rng *rand.Rand, n, k int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := 0; i < k; i++ {
		j := i + intn(rng, n-i)
		p[i], p[j] = p[j], p[i]
	}
	return p[:k]
}

// depths are RULER's insertion depths in percent: 40 points from 0 to
// 100, rounded (none falls on a half).
var depths = func() []int {
	d := make([]int, 40)
	for i := range d {
		d[i] = int(math.Round(100 * float64(i) / 39))
	}
	return d
}()

// sampleDepths returns k of RULER's depths, distinct while k ≤ 40, sorted.
func sampleDepths(rng *rand.Rand, k int) []int {
	var out []int
	for k > 0 {
		m := min(k, len(depths))
		for _, i := range sampleInts(rng, len(depths), m) {
			out = append(out, depths[i])
		}
		k -= m
	}
	sort.Ints(out)
	return out
}
