package passkey

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"

	"kvcascade/datasets/internal/seeded"
)

// Tokenizer turns text into token ids and back. The project's
// runtime/tokenizer.Tokenizer satisfies it.
type Tokenizer interface {
	// Encode returns the ids of text, with the model's special tokens (BOS)
	// when addSpecial is set.
	Encode(text string, addSpecial bool) []int32
	// Decode returns the text of ids, leaving special tokens out when
	// skipSpecial is set.
	Decode(ids []int32, skipSpecial bool) string
}

// Config describes one cell of the passkey grid.
type Config struct {
	// Length is the prompt length in tokens, counted as
	// len(tok.Encode(prompt, true)) after the template is applied.
	Length int
	// DepthBin selects where the key goes: bin b puts it after a fraction
	// of the filler words in [b/Bins, (b+1)/Bins) (the last bin includes 1).
	DepthBin int
	// Seed selects the samples; see Rand.
	Seed int64
	// Words is the path of the word list; empty means the embedded list
	// (see Embedded).
	Words string
	// Template, if not empty, is a chat template for instruct models with a
	// single "{prompt}" placeholder that receives the passkey prompt.
	Template string
	// Cache, if not nil, keeps word lists between calls.
	Cache *Words
}

// Sample is one generated passkey prompt.
type Sample struct {
	// Prompt is the full text given to the model, template applied.
	Prompt string
	// Key is the five-digit pass key the model should answer.
	Key string
	// Depth is the fraction of filler words that precede the key block.
	Depth float64
	// Length is the prompt length in tokens (see Config.Length).
	Length int
	// FillerWords is the number of filler words.
	FillerWords int
}

// Rand returns the random stream of one sample: the same (seed, length,
// depthBin, index) always gives the same stream, and so the same sample.
func Rand(seed int64, length, depthBin, index int) *rand.Rand {
	return seeded.Stream(uint64(seed), uint64(length), uint64(depthBin), uint64(index))
}

// uintn returns a uniform integer in [0, n) using only rng.Uint64, so that
// samples depend on nothing but the PCG stream (Lemire's method).
func uintn(rng *rand.Rand, n uint64) uint64 {
	hi, lo := bits.Mul64(rng.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(rng.Uint64(), n)
		}
	}
	return hi
}

// stream draws filler words lazily, in a fixed order, from rng.
type stream struct {
	words  []string
	rng    *rand.Rand
	filler []string
}

func (s *stream) take(n int) []string {
	for len(s.filler) < n {
		s.filler = append(s.filler, s.words[uintn(s.rng, uint64(len(s.words)))])
	}
	return s.filler[:n]
}

// begin draws, in this order, the key and the uniform number that places
// the key inside its depth bin. Draw and Generate share it, so they give
// the same texts from the same stream.
func begin(rng *rand.Rand) (key string, u float64) {
	key = strconv.FormatUint(10000+uintn(rng, 90000), 10)
	u = float64(rng.Uint64()>>11) / (1 << 53)
	return key, u
}

// insertAt returns the number of filler words before the key block for n
// filler words, depth bin bin and a uniform u in [0, 1): uniform over the
// word boundaries whose depth lies in the bin.
func insertAt(n, bin int, u float64) int {
	lo := (bin*n + Bins - 1) / Bins
	hi := ((bin+1)*n+Bins-1)/Bins - 1
	if bin == Bins-1 {
		hi = n
	}
	if hi < lo {
		return min(lo, n)
	}
	return min(lo+int(u*float64(hi-lo+1)), hi)
}

// Draw draws the parts of one passkey text with nWords filler words from
// words, the key placed in depth bin depthBin. It consumes rng as Generate
// does: the key, the depth, then the words.
func Draw(words []string, nWords, depthBin int, rng *rand.Rand) (Parts, error) {
	if len(words) == 0 {
		return Parts{}, errors.New("passkey: empty word list")
	}
	if nWords < 0 {
		return Parts{}, fmt.Errorf("passkey: negative number of filler words %d", nWords)
	}
	if depthBin < 0 || depthBin >= Bins {
		return Parts{}, fmt.Errorf("passkey: depth bin %d outside [0, %d)", depthBin, Bins)
	}
	key, u := begin(rng)
	s := stream{words: words, rng: rng}
	return Parts{Key: key, Filler: s.take(nWords), At: insertAt(nWords, depthBin, u)}, nil
}

// estimateWords is the number of filler words whose tokens give the first
// estimate of tokens per word.
const estimateWords = 2048

// maxMeasures bounds the full-prompt measurements of one Generate call.
const maxMeasures = 16

// Generate builds one passkey prompt of cfg.Length tokens of tok, within
// ±1 %, drawing the key, its depth and the filler from rng (nil means
// Rand(cfg.Seed, cfg.Length, cfg.DepthBin, 0)).
//
// The filler length is found by measurement, not by encoding word by word:
// the tokens per word of the first 2,048 filler words give a first guess,
// the whole prompt is encoded, and the guess is corrected with the measured
// tokens per word until the prompt is within 0.2 % of the target (exact
// below 500 tokens, as far as word granularity allows). This takes two or
// three encodings of the full prompt, also at a million tokens.
func Generate(cfg Config, tok Tokenizer, rng *rand.Rand) (Sample, error) {
	if cfg.Length < 1 {
		return Sample{}, fmt.Errorf("passkey: length %d tokens must be positive", cfg.Length)
	}
	if cfg.DepthBin < 0 || cfg.DepthBin >= Bins {
		return Sample{}, fmt.Errorf("passkey: depth bin %d outside [0, %d)", cfg.DepthBin, Bins)
	}
	if tok == nil {
		return Sample{}, errors.New("passkey: nil tokenizer")
	}
	if _, err := ApplyTemplate(cfg.Template, ""); err != nil {
		return Sample{}, err
	}
	var words []string
	var err error
	if cfg.Cache != nil {
		words, err = cfg.Cache.Load(cfg.Words)
	} else {
		words, err = (&Words{}).Load(cfg.Words)
	}
	if err != nil {
		return Sample{}, err
	}
	if rng == nil {
		rng = Rand(cfg.Seed, cfg.Length, cfg.DepthBin, 0)
	}
	key, u := begin(rng)
	s := &stream{words: words, rng: rng}

	build := func(n int) string {
		p := Parts{Key: key, Filler: s.take(n), At: insertAt(n, cfg.DepthBin, u)}
		text, _ := Prompt(p) // At is in range by construction
		text, _ = ApplyTemplate(cfg.Template, text)
		return text
	}
	target := cfg.Length
	base := len(tok.Encode(build(0), true))
	if base >= target {
		return Sample{}, fmt.Errorf("passkey: length %d tokens is too short: the prompt without filler has %d tokens", target, base)
	}
	perWord := float64(len(tok.Encode(strings.Join(s.take(estimateWords), " "), false))) / estimateWords
	if perWord <= 0 {
		return Sample{}, errors.New("passkey: the tokenizer gives no tokens for filler words")
	}

	tol := target / 500
	n := max(int(math.Round(float64(target-base)/perWord)), 0)
	tried := make(map[int]bool)
	bestN, bestLen, bestText := -1, 0, ""
	for range maxMeasures {
		tried[n] = true
		text := build(n)
		got := len(tok.Encode(text, true))
		if bestN < 0 || abs(got-target) < abs(bestLen-target) {
			bestN, bestLen, bestText = n, got, text
		}
		if abs(got-target) <= tol {
			break
		}
		if n > 0 && got > base {
			perWord = float64(got-base) / float64(n)
		}
		step := int(math.Round(float64(target-got) / perWord))
		if step == 0 {
			step = 1
			if got > target {
				step = -1
			}
		}
		n = max(n+step, 0)
		if tried[n] {
			break
		}
	}
	if abs(bestLen-target)*100 > target {
		return Sample{}, fmt.Errorf("passkey: cannot reach %d tokens within 1%%: closest is %d tokens with %d filler words", target, bestLen, bestN)
	}
	p := Parts{Key: key, Filler: s.take(bestN), At: insertAt(bestN, cfg.DepthBin, u)}
	return Sample{Prompt: bestText, Key: key, Depth: p.Depth(), Length: bestLen, FillerWords: bestN}, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Score reports whether continuation gives key. The rule is exact: the
// first run of ASCII digits in continuation must equal key, so " 71432."
// and "The pass key is 71432" score for key 71432, while "714321",
// "71,432" and "12 71432" do not. An empty key never scores.
func Score(key, continuation string) bool {
	i := 0
	for i < len(continuation) && !isDigit(continuation[i]) {
		i++
	}
	j := i
	for j < len(continuation) && isDigit(continuation[j]) {
		j++
	}
	return j > i && continuation[i:j] == key
}

// Contains is the lenient rule: key appears anywhere in continuation.
func Contains(key, continuation string) bool {
	return key != "" && strings.Contains(continuation, key)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
