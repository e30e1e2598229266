package passkey

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// The official format: the prompt of the cascade paper's code
// (jeffwillette/cascading_cache_2, commit 4232407,
// cascade/dataset/passkey.py), laid out token by token as that code lays it
// out, so that a model sees what the paper's model saw:
//
//	prefix | filler[:at] | key block | filler[at:] | query
//
// Each of the four kinds of segment is tokenised on its own, with the
// tokenizer's special tokens (BOS), and the token lists are concatenated.
// So the prompt holds several BOS tokens: two at the start (the prefix text
// itself opens with <|begin_of_text|>), one where the filler starts, one
// just before the key block and one before the query. The filler is one
// text of random dictionary words shared by every sample, cut to the number
// of tokens the length leaves; the key block goes in at a token index of
// the filler. The prompt has exactly the requested number of tokens.

// OfficialPrefix opens every official prompt: Llama 3 chat headers with a
// system turn (passkey.py:13-20). It starts with the text of the BOS token.
const OfficialPrefix = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" +
	"Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" +
	"There is a 5-digit pass key hidden in a lot of irrelevant text. Find the pass key and memorize it. " +
	"You will have to repeat the pass key<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"

// OfficialQuery closes every official prompt (passkey.py:22-27).
const OfficialQuery = "\n\nSo now, I will ask the question. What is the five digit pass key?<|eot_id|>" +
	"<|start_header_id|>system<|end_header_id|>\n\nI surely remember the five digit pass key. The pass key is $:\n"

// OfficialKeyLine is the line of the official key block that states key
// three times (passkey.py:31).
func OfficialKeyLine(key string) string {
	return "HERE IS THE PASSKEY! The pass key is " + key + ". " + key + " is the pass key. **the pass key is " +
		key + "** LOOK BEHIND FOR PASSKEY"
}

// OfficialKeyBlock is the official key block: the key line twice between
// banners (passkey.py:30-32).
func OfficialKeyBlock(key string) string {
	l := OfficialKeyLine(key)
	return "=== NOW IMPORTANT INFORMATION STARTS ===\n" + l + "\nREPEAT THE INFORMATION\n" + l +
		"\n=== IMPORTANT INFORMATION STOPS ==="
}

// officialLocs are the official depth bins' upper ends (passkey.py:66),
// written as the same float64 literals so that the bounds computed from them
// round as Python's do.
var officialLocs = [Bins]float64{0.2, 0.4, 0.6, 0.8, 1.0}

// LoadAllWords reads the word list at path as the official code does
// (open(path).read().splitlines(), passkey.py:40): every line, proper nouns,
// possessives and accented words included, with the line breaks "\n",
// "\r\n" and "\r" removed. A missing file or one without lines is an error.
func LoadAllWords(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("passkey: word list %s not found: install the Debian package wamerican "+
			"(apt-get install wamerican) or name another word list: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("passkey: word list: %w", err)
	}
	defer f.Close()
	words, err := readAllWords(f)
	if err != nil {
		return nil, fmt.Errorf("passkey: word list %s: %w", path, err)
	}
	return words, nil
}

func readAllWords(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxWordLine)
	var words []string
	for sc.Scan() {
		// Python's splitlines also splits at a lone "\r"
		words = append(words, strings.Split(strings.TrimSuffix(sc.Text(), "\r"), "\r")...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", len(words)+1, err)
	}
	if len(words) == 0 {
		return nil, errors.New("no lines")
	}
	return words, nil
}

// OfficialFiller is the filler shared by every sample of a seed: random
// words of a list joined by spaces, tokenised once with the tokenizer's
// special tokens. The official code draws a million words (passkey.py:48);
// OfficialFiller draws words of the same stream until their tokens cover
// the longest prompt asked for, which gives the same leading tokens.
type OfficialFiller struct {
	words []string
	rng   *rand.Rand
	drawn []string
	ids   []int32
	tok   Tokenizer
}

// NewOfficialFiller returns the filler drawn from words by rng.
func NewOfficialFiller(words []string, tok Tokenizer, rng *rand.Rand) (*OfficialFiller, error) {
	if len(words) == 0 {
		return nil, errors.New("passkey: empty word list")
	}
	if tok == nil {
		return nil, errors.New("passkey: nil tokenizer")
	}
	return &OfficialFiller{words: words, rng: rng, tok: tok}, nil
}

// FillerRand returns the random stream of the filler of a seed; the
// samples' streams (Rand) are independent of it.
func FillerRand(seed int64) *rand.Rand {
	return Rand(seed, -1, -1, -1)
}

// Tokens returns the filler's first n tokens.
func (f *OfficialFiller) Tokens(n int) []int32 {
	// The last word may tokenise differently once more words follow it, so
	// keep a few words beyond what n needs.
	const margin = 4
	for len(f.ids) < n+margin || len(f.drawn) == 0 {
		more := max(1024, len(f.drawn))
		if len(f.ids) > 0 {
			perWord := float64(len(f.ids)) / float64(len(f.drawn))
			more = max(more/2, int(float64(n+margin-len(f.ids))/perWord)+64)
		}
		for range more {
			f.drawn = append(f.drawn, f.words[uintn(f.rng, uint64(len(f.words)))])
		}
		f.ids = f.tok.Encode(strings.Join(f.drawn, " "), true)
	}
	return f.ids[:n]
}

// OfficialSample is one prompt of the official format.
type OfficialSample struct {
	// IDs are the prompt's tokens.
	IDs []int32
	// Key is the five-digit pass key.
	Key string
	// KeyStart is the index in IDs of the key block's first token (its BOS).
	KeyStart int
	// Depth is KeyStart as a fraction of the prompt's length.
	Depth float64
	// Prefix, Filler, KeyTokens and Query are the token counts of the
	// prompt's parts (Filler counts both filler parts together).
	Prefix, Filler, KeyTokens, Query int
}

// GenerateOfficial builds one official prompt of exactly length tokens with
// its key in depth bin bin, drawing the key and its token index from rng
// (the official np.random.randint(10000, 100000) and
// np.random.randint(start, end), passkey.py:74, :81-82): the filler is
// filler's first length − |prefix| − |query| tokens, less the key block's
// tokens, and the key block goes after at of them, at drawn uniformly from
// [max(|prefix|, ⌊(loc−0.2)·length⌋), ⌊loc·length⌋) where loc is the bin's
// upper end; an at past the filler puts the block at its end, as Python's
// slicing does.
func GenerateOfficial(length, bin int, tok Tokenizer, filler *OfficialFiller, rng *rand.Rand) (OfficialSample, error) {
	if bin < 0 || bin >= Bins {
		return OfficialSample{}, fmt.Errorf("passkey: depth bin %d outside [0, %d)", bin, Bins)
	}
	prefix := tok.Encode(OfficialPrefix, true)
	query := tok.Encode(OfficialQuery, true)
	nFill := length - len(prefix) - len(query)
	key := strconv.FormatUint(10000+uintn(rng, 90000), 10)
	block := tok.Encode(OfficialKeyBlock(key), true)
	if nFill < len(block) {
		return OfficialSample{}, fmt.Errorf("passkey: length %d tokens is too short for the official prompt: "+
			"prefix, key block and query take %d", length, len(prefix)+len(block)+len(query))
	}
	loc := officialLocs[bin]
	lo, hi := max(len(prefix), int((loc-0.2)*float64(length))), int(loc*float64(length))
	if lo >= hi {
		return OfficialSample{}, fmt.Errorf("passkey: length %d tokens leaves no place for the key in depth bin %d "+
			"(token index range [%d, %d))", length, bin, lo, hi)
	}
	local := filler.Tokens(nFill)[:nFill-len(block)]
	at := min(lo+int(uintn(rng, uint64(hi-lo))), len(local))
	ids := make([]int32, 0, length)
	ids = append(ids, prefix...)
	ids = append(ids, local[:at]...)
	keyStart := len(ids)
	ids = append(ids, block...)
	ids = append(ids, local[at:]...)
	ids = append(ids, query...)
	return OfficialSample{IDs: ids, Key: key, KeyStart: keyStart, Depth: float64(keyStart) / float64(len(ids)),
		Prefix: len(prefix), Filler: len(local), KeyTokens: len(block), Query: len(query)}, nil
}

// Digits returns the official reading of an answer (get_numbers of
// cascade/main/jobs/passkey.py:10-15): its digits in order, the first five,
// padded with "A" to five characters.
func Digits(answer string) string {
	var b strings.Builder
	for _, r := range answer {
		if b.Len() >= 5 {
			break
		}
		if unicode.IsDigit(r) {
			if r < '0' || r > '9' {
				r = 'X' // a digit of another script: takes a place, matches no key digit
			}
			b.WriteRune(r)
		}
	}
	for b.Len() < 5 {
		b.WriteByte('A')
	}
	return b.String()
}

// DigitScore returns how many of the five places of Digits(answer) equal
// key's digits there (passkey.py:118-126 scores correct places over all
// places); 0 to 5.
func DigitScore(key, answer string) int {
	d := Digits(answer)
	n := 0
	for i := range min(len(key), len(d)) {
		if key[i] == d[i] {
			n++
		}
	}
	return n
}
