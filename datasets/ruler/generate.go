package ruler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Config describes one cell of the RULER grid: a task at a length.
type Config struct {
	Task Task
	// Length is RULER's max_seq_length in tokens: the prompt, counted as
	// len(tok.Encode(prompt, true)), plus the answer tokens fit in it.
	Length int
	// AnswerTokens, when positive, replaces Task.AnswerTokens.
	AnswerTokens int
	// Seed selects the samples; see Rand.
	Seed int64
	// Template, if not empty, is a chat template with a single "{prompt}"
	// placeholder; it wraps the task text, and the answer prefix follows.
	Template string
	// Sources are the texts the task draws from (see Sources).
	Sources Sources
}

// Answer returns the answer tokens of cfg: AnswerTokens when positive,
// else the task's.
func (cfg Config) Answer() int {
	if cfg.AnswerTokens > 0 {
		return cfg.AnswerTokens
	}
	return cfg.Task.AnswerTokens
}

// Sample is one generated RULER prompt.
type Sample struct {
	// Task is the task's name.
	Task string
	// Index is the sample's index.
	Index int
	// Prompt is the full text given to the model: the (chat-wrapped) task
	// text and the answer prefix.
	Prompt string
	// Answers are the reference strings the prediction is scored against.
	Answers []string
	// Length is the prompt's length in tokens, BOS included.
	Length int
	// Haystack is the haystack size found: noise sentences, essay words,
	// distractor needles or random words (niah), noise sentences (vt),
	// listed words (cwe), coded words (fwe) or documents (qa).
	Haystack int
}

// builder makes a sample's prompt for a haystack of size n.
type builder func(n int) string

// Generate builds sample index of cfg: the largest haystack whose prompt
// plus cfg.Answer() tokens fits cfg.Length tokens of tok.
func Generate(cfg Config, tok Tokenizer, index int) (Sample, error) {
	t := cfg.Task
	switch {
	case tok == nil:
		return Sample{}, errors.New("ruler: nil tokenizer")
	case cfg.Length < 1:
		return Sample{}, fmt.Errorf("ruler: %s: length %d tokens must be positive", t.Name, cfg.Length)
	case index < 0:
		return Sample{}, fmt.Errorf("ruler: %s: negative sample index %d", t.Name, index)
	}
	build, answers, lo, err := prepare(cfg, tok, index)
	if err != nil {
		return Sample{}, err
	}
	n, text, tokens, err := fit(build, tok, cfg.Length-cfg.Answer(), lo)
	if err != nil {
		return Sample{}, fmt.Errorf("ruler: %s at %d tokens (%d for the answer): %w", t.Name, cfg.Length, cfg.Answer(), err)
	}
	return Sample{Task: t.Name, Index: index, Prompt: text, Answers: answers, Length: tokens, Haystack: n}, nil
}

// prepare draws sample index of cfg and returns its prompt builder, its
// answers and the smallest haystack size.
func prepare(cfg Config, tok Tokenizer, index int) (build builder, answers []string, lo int, err error) {
	t := cfg.Task
	if _, err := ApplyTemplate(cfg.Template, ""); err != nil {
		return nil, nil, 0, err
	}
	wrap := func(s string) string {
		s, _ = ApplyTemplate(cfg.Template, s) // checked above
		return s
	}
	src := cfg.Sources
	if src.Words == nil {
		src.Words = EmbeddedWords()
	}
	rng := Rand(cfg.Seed, t.Name, cfg.Length, index)
	lo = 1
	switch t.Family {
	case FamilyNIAH:
		build, answers, err = niahTask(t, src, rng, wrap)
	case FamilyVT:
		build, answers, err = vtTask(t, tok, rng, wrap)
	case FamilyCWE:
		build, answers = cweTask(t, src.Words, cfg.Length, rng, wrap)
		lo = t.Common
	case FamilyFWE:
		build, answers = fweTask(t, cfg.Length-cfg.Answer(), rng, wrap)
	case FamilyQA:
		build, answers, lo, err = qaTask(t, src.QA, index, rng, wrap)
	default:
		err = fmt.Errorf("ruler: task %s: unknown family %q", t.Name, t.Family)
	}
	return build, answers, lo, err
}

// maxMeasures bounds the prompts fit encodes for one sample.
const maxMeasures = 64

// fit returns the largest size n ≥ lo whose prompt has at most limit
// tokens, with the prompt and its length. Like RULER it searches the size,
// but by interpolation rather than bisection: token counts grow almost
// linearly with the size, so a probe gives the tokens per unit, the first
// guess lands within a unit or two of the boundary, and the search stops
// when the largest size that fits and the smallest that does not are
// neighbours. That is four to six encodings of the full prompt instead of
// RULER's twenty-odd, which matters at 128K tokens. A step that does not
// halve the bracket is followed by a bisection, so the search always ends.
func fit(build builder, tok Tokenizer, limit, lo int) (int, string, int, error) {
	measure := func(n int) (string, int) {
		s := build(n)
		return s, len(tok.Encode(s, true))
	}
	text, tokens := measure(lo)
	if tokens > limit {
		return 0, "", 0, fmt.Errorf("length too short: the prompt with the smallest haystack (%d) has %d tokens, more than %d", lo, tokens, limit)
	}
	best, bestTok := lo, tokens // the largest size known to fit
	hi, hiTok := -1, 0          // the smallest size known not to fit
	// Every unit of every haystack has at least one token, so a size of
	// lo+limit cannot fit.
	ceiling := lo + limit
	lastN, lastTok := lo, tokens
	n := min(lo+max(lo, 16), ceiling)
	width := math.MaxInt
	for range maxMeasures {
		s, c := measure(n)
		if c <= limit {
			best, bestTok, text = n, c, s
		} else {
			hi, hiTok = n, c
		}
		if hi >= 0 && hi-best <= 1 {
			return best, text, bestTok, nil
		}
		if hi < 0 && n >= ceiling {
			return 0, "", 0, fmt.Errorf("the prompt does not grow with its haystack (%d tokens at size %d)", c, n)
		}
		var next int
		switch {
		case hi >= 0 && hi-best > width/2:
			next = best + (hi-best)/2 // the last step did not halve the bracket
		case hi >= 0:
			next = best + int(float64(limit-bestTok)*float64(hi-best)/float64(hiTok-bestTok))
		default:
			if c <= lastTok {
				return 0, "", 0, fmt.Errorf("the prompt does not grow with its haystack (%d tokens at size %d and %d at %d)", lastTok, lastN, c, n)
			}
			perUnit := float64(c-lastTok) / float64(n-lastN)
			next = best + int(float64(limit-bestTok)/perUnit)
		}
		if hi >= 0 {
			width = hi - best
			next = min(next, hi-1)
		}
		lastN, lastTok = n, c
		n = min(max(next, best+1), ceiling)
	}
	return 0, "", 0, fmt.Errorf("no haystack size found after %d prompts", maxMeasures)
}

// draw returns a random value of kind.
func draw(kind string, w *Words, rng *rand.Rand) string {
	switch kind {
	case KindNumbers:
		return strconv.Itoa(1_000_000 + intn(rng, 9_000_000))
	case KindUUIDs:
		var b [16]byte
		hi, lo := rng.Uint64(), rng.Uint64()
		for i := range 8 {
			b[i], b[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
		b[6] = b[6]&0x0f | 0x40 // version 4
		b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
		const hex = "0123456789abcdef"
		var s strings.Builder
		for i, x := range b {
			if i == 4 || i == 6 || i == 8 || i == 10 {
				s.WriteByte('-')
			}
			s.WriteByte(hex[x>>4])
			s.WriteByte(hex[x&15])
		}
		return s.String()
	default: // KindWords
		return w.Adjectives[intn(rng, len(w.Adjectives))] + "-" + w.Nouns[intn(rng, len(w.Nouns))]
	}
}

// niahTask draws a needle task's keys, values, depths and query; the
// haystack of each size is built from them.
func niahTask(t Task, src Sources, rng *rand.Rand, wrap func(string) string) (builder, []string, error) {
	for _, k := range []string{t.KeyKind, t.ValueKind} {
		if k != KindNumbers && k != KindWords && k != KindUUIDs {
			return nil, nil, fmt.Errorf("ruler: task %s: unknown needle kind %q", t.Name, k)
		}
	}
	if t.Keys < 1 || t.Values < 1 || t.Queries < 1 || t.Queries > t.Keys {
		return nil, nil, fmt.Errorf("ruler: task %s: %d keys, %d values, %d queries", t.Name, t.Keys, t.Values, t.Queries)
	}
	if t.Haystack == HaystackEssay && len(src.Essay) == 0 {
		return nil, nil, fmt.Errorf("ruler: task %s needs an essay text", t.Name)
	}
	w := src.Words
	used := map[string]bool{}
	fresh := func(kind string, r *rand.Rand) string {
		for {
			if s := draw(kind, w, r); !used[s] {
				used[s] = true
				return s
			}
		}
	}
	keys := make([]string, t.Keys)
	values := make([][]string, t.Keys)
	var needles []string
	for i := range keys {
		keys[i] = fresh(t.KeyKind, rng)
		for range t.Values {
			v := fresh(t.ValueKind, rng)
			values[i] = append(values[i], v)
			needles = append(needles, fill(needleTemplate, "type_needle_v", t.ValueKind, "key", keys[i], "value", v))
		}
	}
	shuffle(rng, needles)
	var queries, answers []string
	for _, i := range sampleInts(rng, t.Keys, t.Queries) {
		queries = append(queries, keys[i])
		answers = append(answers, values[i]...)
	}
	tmpl, prefix, kind := niahTemplate, niahPrefix, t.ValueKind
	if t.Queries*t.Values == 1 {
		tmpl, prefix, kind = singular(tmpl), singular(prefix), strings.TrimSuffix(kind, "s")
	}
	query := joinQuery(queries)
	prompt := func(context string) string {
		return wrap(fill(tmpl, "type_needle_v", kind, "context", context, "query", query)) +
			fill(prefix, "type_needle_v", kind, "query", query)
	}
	at := sampleDepths(rng, len(needles)) // essay and words haystacks
	u := make([]float64, len(needles))    // noise and needle haystacks
	for i := range u {
		u[i] = uniform(rng)
	}
	sa, sb := child(rng) // the haystack's own draws
	switch t.Haystack {
	case HaystackNoise, HaystackNeedle:
		return func(n int) string {
			lines := make([]string, n)
			r := newRand(sa, sb)
			for i := range lines {
				if t.Haystack == HaystackNoise {
					lines[i] = NoiseSentences
					continue
				}
				k, v := draw(t.KeyKind, w, r), draw(t.ValueKind, w, r)
				for used[k] {
					k = draw(t.KeyKind, w, r)
				}
				lines[i] = fill(needleTemplate, "type_needle_v", t.ValueKind, "key", k, "value", v)
			}
			return prompt(strings.Join(insertLines(lines, needles, u), "\n"))
		}, answers, nil
	case HaystackEssay:
		return func(n int) string {
			words := make([]string, n)
			for i := range words {
				words[i] = src.Essay[i%len(src.Essay)]
			}
			return prompt(insertAtDepths(Sentences(strings.Join(words, " ")), needles, at))
		}, answers, nil
	case HaystackWords:
		return func(n int) string {
			r := newRand(sa, sb)
			words := make([]string, n)
			for i := range words {
				words[i] = w.All[intn(r, len(w.All))]
			}
			return prompt(insertAtDepths(words, needles, at))
		}, answers, nil
	}
	return nil, nil, fmt.Errorf("ruler: task %s: unknown haystack %q", t.Name, t.Haystack)
}

// insertLines puts needles[i] before line ⌊u[i]·len(lines)⌋ of lines (in
// the order of needles where two fall at the same line).
func insertLines(lines, needles []string, u []float64) []string {
	out := make([]string, 0, len(lines)+len(needles))
	type ins struct {
		at int
		s  string
	}
	var order []ins
	for i, s := range needles {
		order = append(order, ins{int(u[i] * float64(len(lines))), s})
	}
	// stable, so needles at the same line keep their order
	slices.SortStableFunc(order, func(a, b ins) int { return a.at - b.at })
	k := 0
	for i, l := range lines {
		for k < len(order) && order[k].at == i {
			out = append(out, order[k].s)
			k++
		}
		out = append(out, l)
	}
	for ; k < len(order); k++ {
		out = append(out, order[k].s)
	}
	return out
}

// insertAtDepths joins units (sentences or words) with spaces, putting
// needle i after the first ⌊len(units)·depth[i]/100⌋ units, as RULER does
// for its essay haystack; depths are sorted.
func insertAtDepths(units, needles []string, depth []int) string {
	var b strings.Builder
	last := 0
	put := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	for i, d := range depth {
		pos := len(units) * d / 100
		put(strings.Join(units[last:pos], " "))
		put(needles[i])
		last = pos
	}
	put(strings.Join(units[last:], " "))
	return b.String()
}

// Sentences splits text into sentences after '.', '!' or '?' (and any
// closing quotes or brackets) followed by white space; the split is
// simpler than RULER's NLTK Punkt, which also knows abbreviations.
func Sentences(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '.' && c != '!' && c != '?' {
			continue
		}
		j := i + 1
		for j < len(text) && strings.IndexByte(`"')]`, text[j]) >= 0 {
			j++
		}
		if j < len(text) && (text[j] == ' ' || text[j] == '\n' || text[j] == '\t') {
			if s := strings.TrimSpace(text[start:j]); s != "" {
				out = append(out, s)
			}
			start = j
			i = j
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// vtTask draws the variable chains and the worked example of variable
// tracking.
func vtTask(t Task, tok Tokenizer, rng *rand.Rand, wrap func(string) string) (builder, []string, error) {
	if t.Chains < 1 || t.Hops < 1 {
		return nil, nil, fmt.Errorf("ruler: task %s: %d chains of %d hops", t.Name, t.Chains, t.Hops)
	}
	if t.Haystack != HaystackNoise {
		return nil, nil, fmt.Errorf("ruler: task %s: haystack %q (only noise is supported)", t.Name, t.Haystack)
	}
	main := drawChains(rng, t.Chains, t.Hops, 5)
	ex := drawChains(rng, t.Chains, min(t.Hops, 10), 3)
	text := func(c chains, n int) string {
		return fill(vtTemplate, "context", c.context(n), "query", c.value()) +
			fill(vtPrefix, "num_v", strconv.Itoa(len(c.vars[0])), "query", c.value())
	}
	_, exText, _, err := fit(func(n int) string { return text(ex, n) }, tok, vtExampleLength, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("ruler: %s: worked example: %w", t.Name, err)
	}
	example := exText + " " + strings.Join(ex.vars[0], " ") + "\n"
	prefix := fill(vtPrefix, "num_v", strconv.Itoa(t.Hops+1), "query", main.value())
	return func(n int) string {
		body := fill(vtTemplate, "context", main.context(n), "query", main.value())
		return wrap(example+"\n"+body) + prefix
	}, main.vars[0], nil
}

// chains are variable-tracking chains with the draws that place them.
type chains struct {
	vars   [][]string  // per chain: the variables, first assigned the value
	values []string    // per chain: the value
	u      [][]float64 // per chain: sorted uniforms placing its lines
}

func drawChains(rng *rand.Rand, n, hops, letters int) chains {
	seen := map[string]bool{}
	var c chains
	for range n {
		var vars []string
		for len(vars) < hops+1 {
			b := make([]byte, letters)
			for i := range b {
				b[i] = byte('A' + intn(rng, 26))
			}
			if s := string(b); !seen[s] {
				seen[s] = true
				vars = append(vars, s)
			}
		}
		c.vars = append(c.vars, vars)
		c.values = append(c.values, strconv.Itoa(10000+intn(rng, 89999)))
		u := make([]float64, hops+1)
		for i := range u {
			u[i] = uniform(rng)
		}
		slices.Sort(u)
		c.u = append(c.u, u)
	}
	return c
}

func (c chains) value() string { return c.values[0] }

// context is n noise lines with each chain's assignments inserted in order
// ("VAR B = VAR A " keeps RULER's trailing space).
func (c chains) context(n int) string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = NoiseSentences
	}
	for ci, vars := range c.vars {
		base := len(lines) // RULER samples positions among the lines before the chain
		for j := range vars {
			s := "VAR " + vars[0] + " = " + c.values[ci]
			if j > 0 {
				s = "VAR " + vars[j] + " = VAR " + vars[j-1] + " "
			}
			at := int(c.u[ci][j]*float64(base)) + j
			lines = append(lines, "")
			copy(lines[at+1:], lines[at:])
			lines[at] = s
		}
	}
	return strings.Join(lines, "\n")
}

// cweTask draws the words of common-word extraction and its worked
// example. Below 4,096 tokens RULER repeats the common words 6 times and
// the others once, and its example is smaller.
func cweTask(t Task, w *Words, length int, rng *rand.Rand, wrap func(string) string) (builder, []string) {
	cr, ur, exWords, exCR, exUR := t.CommonRepeats, t.UncommonRepeats, 40, 10, 3
	if length < 4096 {
		cr, ur, exWords, exCR, exUR = 6, 1, 20, 3, 1
	}
	vocab := append([]string(nil), w.All...)
	shuffle(rng, vocab)
	exVocab := append([]string(nil), w.All...)
	shuffle(rng, exVocab)
	exVocab = pseudoWords(exVocab, exWords)[:exWords]
	sa, sb := child(rng)
	list := func(words []string, common, cr, ur int) string {
		var l []string
		for range cr {
			l = append(l, words[:common]...)
		}
		for range ur {
			l = append(l, words[common:]...)
		}
		shuffle(newRand(sa, sb), l)
		return numbered(l)
	}
	common := min(t.Common, exWords)
	example := wrap(fill(cweTemplate, "context", list(exVocab, common, exCR, exUR))) + cwePrefix + " " + numbered(exVocab[:common])
	answers := append([]string(nil), pseudoWords(vocab, t.Common)[:t.Common]...)
	return func(n int) string {
		vocab = pseudoWords(vocab, n)
		return example + "\n" + wrap(fill(cweTemplate, "context", list(vocab[:n], t.Common, cr, ur))) + cwePrefix
	}, answers
}

// numbered formats words as "1. a 2. b 3. c".
func numbered(words []string) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". ")
		b.WriteString(w)
	}
	return b.String()
}

// fweTask draws the coded vocabulary of frequent-word extraction: one coded
// word per 50 tokens of the length (at least 5), the first replaced by
// "..." (the noise RULER asks the model to ignore).
func fweTask(t Task, length int, rng *rand.Rand, wrap func(string) string) (builder, []string) {
	size := max(length/fweVocabDivisor, 5)
	seen := map[string]bool{}
	var vocab []string
	for len(vocab) < size {
		b := make([]byte, fweWordLen)
		for i := range b {
			b[i] = byte('a' + intn(rng, 26))
		}
		if s := string(b); !seen[s] {
			seen[s] = true
			vocab = append(vocab, s)
		}
	}
	vocab[0] = "..."
	z := zeta(t.Alpha)
	sa, sb := child(rng)
	return func(n int) string {
		var words []string
		for k, w := range vocab {
			c := int(float64(n) * math.Pow(float64(k+1), -t.Alpha) / z)
			for range c {
				words = append(words, w)
			}
		}
		shuffle(newRand(sa, sb), words)
		return wrap(fill(fweTemplate, "context", strings.Join(words, " "))) + fwePrefix
	}, append([]string(nil), vocab[1:4]...)
}

// zeta is the Riemann zeta function for s > 1 (Euler–Maclaurin after 1,000
// terms).
func zeta(s float64) float64 {
	const n = 1000
	var sum float64
	for k := n - 1; k >= 1; k-- {
		sum += math.Pow(float64(k), -s)
	}
	N := float64(n)
	return sum + math.Pow(N, 1-s)/(s-1) + math.Pow(N, -s)/2 + s*math.Pow(N, -s-1)/12
}

// qaTask picks question index (in file order, wrapping) and the order of
// its distractor paragraphs.
func qaTask(t Task, set *QASet, index int, rng *rand.Rand, wrap func(string) string) (builder, []string, int, error) {
	if set == nil {
		return nil, nil, 0, fmt.Errorf("ruler: task %s needs a QA file in %s format", t.Name, t.Format)
	}
	item := set.Items[index%len(set.Items)]
	taken := map[int]bool{}
	for _, i := range item.Gold {
		taken[i] = true
	}
	more := append([]int(nil), item.More...)
	shuffle(rng, more)
	for _, i := range more {
		taken[i] = true
	}
	var others []int
	for i := range set.Docs {
		if !taken[i] {
			others = append(others, i)
		}
	}
	shuffle(rng, others)
	pool := append(append(append([]int(nil), item.Gold...), more...), others...)
	sa, sb := child(rng)
	return func(n int) string {
		docs := make([]int, n)
		for i := range docs {
			docs[i] = pool[i%len(pool)]
		}
		shuffle(newRand(sa, sb), docs)
		parts := make([]string, n)
		for i, d := range docs {
			parts[i] = fill(qaDocument, "i", strconv.Itoa(i+1), "document", set.Docs[d])
		}
		return wrap(fill(qaTemplate, "context", strings.Join(parts, "\n\n"), "query", item.Question)) + qaPrefix
	}, append([]string(nil), item.Answers...), len(item.Gold), nil
}
