package longbench

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Metric scores one prediction against one reference answer; allClasses is
// the sample's label set (used by Classification only). Scores lie in
// [0, 1].
type Metric func(prediction, answer string, allClasses []string) float64

// asciiPunct is Python's string.punctuation.
const asciiPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// pySpace reports whether r is whitespace for Python's str.split(): Go's
// unicode.IsSpace plus the separators U+001C–U+001F.
func pySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// pyFields splits s like Python's s.split().
func pyFields(s string) []string { return strings.FieldsFunc(s, pySpace) }

// pyWord reports whether r matches \w in a Python 3 str pattern: a letter,
// a number or the underscore.
func pyWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

// NormalizeAnswer is metrics.py's normalize_answer: lower-case, remove
// ASCII punctuation, replace the articles "a", "an" and "the" standing as
// whole words by a space, and collapse whitespace to single spaces.
// Lower-casing is Go's strings.ToLower, which differs from Python's
// str.lower only for a few special cases such as U+0130.
func NormalizeAnswer(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && strings.IndexByte(asciiPunct, byte(r)) >= 0 {
			return -1
		}
		return r
	}, s)
	// re.sub(r"\b(a|an|the)\b", " ", s): a match is a whole run of word
	// characters equal to an article.
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !pyWord(r) {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		j := i
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if !pyWord(r) {
				break
			}
			j += n
		}
		switch w := s[i:j]; w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return strings.Join(pyFields(b.String()), " ")
}

// QAF1 is metrics.py's qa_f1_score: the F1 of the bag-of-words overlap of
// the normalised prediction and answer; 0 when nothing is shared.
func QAF1(prediction, answer string, _ []string) float64 {
	return tokenF1(pyFields(NormalizeAnswer(prediction)), pyFields(NormalizeAnswer(answer)))
}

func tokenF1(pred, truth []string) float64 {
	counts := make(map[string]int, len(truth))
	for _, w := range truth {
		counts[w]++
	}
	same := 0
	for _, w := range pred {
		if counts[w] > 0 {
			counts[w]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	p := float64(same) / float64(len(pred))
	r := float64(same) / float64(len(truth))
	return 2 * p * r / (p + r)
}

// RougeL is metrics.py's rouge_score: the "f" of "rouge-l" from the Python
// package rouge (version 1.0.1, default settings), which is the
// summary-level ROUGE-L of Lin (2004) with set semantics:
//
//   - both texts are split into sentences at every "." (empty pieces
//     dropped, runs of whitespace inside a piece joined by single spaces)
//     and the sentences into words at single spaces;
//   - for every reference sentence and every prediction sentence, one
//     longest common subsequence of words is traced back (reference words
//     i, prediction words j, from the ends: a match steps diagonally, else
//     the step goes to i−1 when that cell is strictly larger, else to
//     j−1), and its words are added to one set;
//   - with L the size of that set, m the number of distinct reference words
//     and n the number of distinct prediction words, R = L/m, P = L/n and
//     F = 2PR / (P + R + 1e-8).
//
// A prediction or answer without a sentence scores 0, as the exception it
// raises in the package does. The one behaviour not copied is Python's
// recursion limit, which makes the package fail, and metrics.py score 0,
// when a traced subsequence path is longer than about 1,000 steps.
func RougeL(prediction, answer string, _ []string) float64 {
	hyp := rougeSentences(prediction)
	ref := rougeSentences(answer)
	if len(hyp) == 0 || len(ref) == 0 {
		return 0
	}
	m := distinct(ref)
	n := distinct(hyp)
	union := make(map[string]struct{})
	var table []int32
	for _, r := range ref {
		for _, h := range hyp {
			table = lcsWords(r, h, union, table)
		}
	}
	l := float64(len(union))
	rec := l / float64(m)
	prec := l / float64(n)
	return 2 * (prec * rec) / (prec + rec + 1e-8)
}

// rougeSentences splits text as the rouge package does.
func rougeSentences(text string) [][]string {
	var out [][]string
	for _, piece := range strings.Split(text, ".") {
		if piece == "" {
			continue
		}
		out = append(out, strings.Split(strings.Join(pyFields(piece), " "), " "))
	}
	return out
}

func distinct(sentences [][]string) int {
	set := make(map[string]struct{})
	for _, s := range sentences {
		for _, w := range s {
			set[w] = struct{}{}
		}
	}
	return len(set)
}

// lcsWords adds the words of one longest common subsequence of x
// (reference) and y (prediction), traced as the rouge package does, to set.
// It reuses and returns table.
func lcsWords(x, y []string, set map[string]struct{}, table []int32) []int32 {
	n, m := len(x), len(y)
	w := m + 1
	size := (n + 1) * w
	if cap(table) < size {
		table = make([]int32, size)
	}
	table = table[:size]
	for j := range w {
		table[j] = 0
	}
	for i := 1; i <= n; i++ {
		row, prev := table[i*w:(i+1)*w], table[(i-1)*w:i*w]
		row[0] = 0
		for j := 1; j <= m; j++ {
			switch {
			case x[i-1] == y[j-1]:
				row[j] = prev[j-1] + 1
			case prev[j] >= row[j-1]:
				row[j] = prev[j]
			default:
				row[j] = row[j-1]
			}
		}
	}
	for i, j := n, m; i > 0 && j > 0; {
		switch {
		case x[i-1] == y[j-1]:
			set[x[i-1]] = struct{}{}
			i--
			j--
		case table[(i-1)*w+j] > table[i*w+j-1]:
			i--
		default:
			j--
		}
	}
	return table
}

// Classification is metrics.py's classification_score, quirks included:
// the classes that occur in the prediction as substrings are collected;
// then, walking that list while removing from it (so that the element after
// a removed one is skipped, as Python's list iterator does), each class
// that is a substring of the answer but not the answer itself is removed.
// The score is 1/len(list) if the answer is in the list, else 0. (Older
// copies of metrics.py have a difflib fallback for an empty list that can
// never run: its condition compares a list with 0.)
func Classification(prediction, answer string, allClasses []string) float64 {
	var matched []string
	for _, c := range allClasses {
		if strings.Contains(prediction, c) {
			matched = append(matched, c)
		}
	}
	for i := 0; i < len(matched); i++ {
		c := matched[i]
		if strings.Contains(answer, c) && c != answer {
			// list.remove drops the first equal element.
			for k := range matched {
				if matched[k] == c {
					matched = append(matched[:k], matched[k+1:]...)
					break
				}
			}
		}
	}
	for _, c := range matched {
		if c == answer {
			return 1 / float64(len(matched))
		}
	}
	return 0
}

// Retrieval is metrics.py's retrieval_score: the paragraph number is the
// first "Paragraph N" of the answer; the score is the fraction of the
// numbers (runs of Unicode decimal digits, as Python's \d) in the
// prediction that equal it, 0 if there are none. An answer without
// "Paragraph N" scores 0 (metrics.py raises an IndexError).
func Retrieval(prediction, answer string, _ []string) float64 {
	id, ok := numberAfter(answer, "Paragraph ")
	if !ok {
		return 0
	}
	return Count(prediction, id, nil)
}

// RetrievalZh is metrics.py's retrieval_zh_score: Retrieval with "段落N".
func RetrievalZh(prediction, answer string, _ []string) float64 {
	id, ok := numberAfter(answer, "段落")
	if !ok {
		return 0
	}
	return Count(prediction, id, nil)
}

// Count is metrics.py's count_score: the fraction of the numbers in the
// prediction (runs of Unicode decimal digits) equal to the answer as
// strings; 0 if the prediction has no number.
func Count(prediction, answer string, _ []string) float64 {
	numbers, right := 0, 0
	for i := 0; i < len(prediction); {
		r, n := utf8.DecodeRuneInString(prediction[i:])
		if !unicode.IsDigit(r) {
			i += n
			continue
		}
		j := digitsEnd(prediction, i)
		numbers++
		if prediction[i:j] == answer {
			right++
		}
		i = j
	}
	if numbers == 0 {
		return 0
	}
	return float64(right) / float64(numbers)
}

// digitsEnd returns the end of the run of decimal digits starting at i.
func digitsEnd(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsDigit(r) {
			break
		}
		i += n
	}
	return i
}

// numberAfter finds the first occurrence of prefix followed by a digit and
// returns the run of digits after it.
func numberAfter(s, prefix string) (string, bool) {
	for off := 0; ; {
		k := strings.Index(s[off:], prefix)
		if k < 0 {
			return "", false
		}
		start := off + k + len(prefix)
		if end := digitsEnd(s, start); end > start {
			return s[start:end], true
		}
		off += k + 1
	}
}

// CodeSim is metrics.py's code_sim_score: the prediction's first line (after
// leading newlines) that contains none of "`", "#" and "//" (or "" if every
// line does) is compared with the answer by FuzzRatio, divided by 100.
func CodeSim(prediction, answer string, _ []string) float64 {
	line := ""
	for _, l := range strings.Split(strings.TrimLeft(prediction, "\n"), "\n") {
		if !strings.Contains(l, "`") && !strings.Contains(l, "#") && !strings.Contains(l, "//") {
			line = l
			break
		}
	}
	return float64(FuzzRatio(line, answer)) / 100
}

// FuzzRatio is fuzzywuzzy's fuzz.ratio without python-Levenshtein, the
// pure-Python set-up: 100 for equal strings, 0 when one is empty, else
// SequenceRatio × 100 rounded half to even. (With python-Levenshtein
// installed fuzzywuzzy computes IndelRatio instead; the two agree on most
// code lines but not all.)
func FuzzRatio(a, b string) int {
	if a == b {
		return 100
	}
	if a == "" || b == "" {
		return 0
	}
	return int(math.RoundToEven(100 * SequenceRatio(a, b)))
}

// SequenceRatio is Python's difflib.SequenceMatcher(None, a, b).ratio() on
// the code points of a and b: 2M/T, where T is the total length and M the
// number of characters in the matching blocks that the matcher finds
// (longest match first, then recursively left and right of it), with its
// "autojunk" heuristic: when b has 200 characters or more, characters that
// occur in b more than 1 + len(b)/100 times do not start a match, though a
// match may extend over them. Two empty strings give 1.
func SequenceRatio(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	total := len(ra) + len(rb)
	if total == 0 {
		return 1
	}
	return 2 * float64(matching(ra, rb)) / float64(total)
}

// matching returns the total size of difflib's matching blocks of a and b.
func matching(a, b []rune) int {
	b2j := make(map[rune][]int)
	for j, c := range b {
		b2j[c] = append(b2j[c], j)
	}
	if n := len(b); n >= 200 {
		ntest := n/100 + 1
		for c, js := range b2j {
			if len(js) > ntest {
				delete(b2j, c)
			}
		}
	}
	j2len := make(map[int]int)
	next := make(map[int]int)
	longest := func(alo, ahi, blo, bhi int) (int, int, int) {
		besti, bestj, best := alo, blo, 0
		clear(j2len)
		for i := alo; i < ahi; i++ {
			clear(next)
			for _, j := range b2j[a[i]] {
				if j < blo {
					continue
				}
				if j >= bhi {
					break
				}
				k := j2len[j-1] + 1
				next[j] = k
				if k > best {
					besti, bestj, best = i-k+1, j-k+1, k
				}
			}
			j2len, next = next, j2len
		}
		for besti > alo && bestj > blo && a[besti-1] == b[bestj-1] {
			besti, bestj, best = besti-1, bestj-1, best+1
		}
		for besti+best < ahi && bestj+best < bhi && a[besti+best] == b[bestj+best] {
			best++
		}
		return besti, bestj, best
	}
	total := 0
	queue := [][4]int{{0, len(a), 0, len(b)}}
	for len(queue) > 0 {
		q := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		alo, ahi, blo, bhi := q[0], q[1], q[2], q[3]
		i, j, k := longest(alo, ahi, blo, bhi)
		if k == 0 {
			continue
		}
		total += k
		if alo < i && blo < j {
			queue = append(queue, [4]int{alo, i, blo, j})
		}
		if i+k < ahi && j+k < bhi {
			queue = append(queue, [4]int{i + k, ahi, j + k, bhi})
		}
	}
	return total
}

// IndelRatio is python-Levenshtein's ratio, which fuzzywuzzy uses when that
// package is installed: 2·LCS/T on code points, where LCS is the longest
// common subsequence and T the total length (1 − indel distance / T). Two
// empty strings give 1.
func IndelRatio(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	total := len(ra) + len(rb)
	if total == 0 {
		return 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			switch {
			case ra[i-1] == rb[j-1]:
				cur[j] = prev[j-1] + 1
			default:
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return 2 * float64(prev[len(rb)]) / float64(total)
}
