package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Parse builds a Tokenizer from the contents of a tokenizer.json; source
// names the file in errors. Besides malformed JSON it rejects what the
// tokenizers library would not encode the same way: models other than BPE,
// normalizers, pre-tokenizers, decoders and post-processors this package
// does not implement, merges naming tokens not in the vocabulary, ids out
// of range or given twice, and added-token ids other than the ones the
// library assigns.
func Parse(data []byte, source string) (*Tokenizer, error) {
	p := &parser{source: source, table: newByteTable()}
	return p.parse(data)
}

// parser carries what every part of the parse needs.
type parser struct {
	source string
	table  *byteTable
}

// errorf returns an error naming the source and the JSON field.
func (p *parser) errorf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %s", p.source, field, fmt.Sprintf(format, args...))
}

// jsonError describes err from decoding data, the JSON of field: where a
// syntax error is, or which field has a value of the wrong type.
func (p *parser) jsonError(data []byte, field string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset)
		return fmt.Errorf("%s: %s: malformed JSON at line %d, column %d: %w", p.source, field, line, col, err)
	case errors.As(err, &typ):
		if typ.Field != "" {
			field += "." + typ.Field
		}
		return fmt.Errorf("%s: %s: value is %s, want %s", p.source, field, typ.Value, jsonKind(typ.Type))
	}
	return fmt.Errorf("%s: %s: %w", p.source, field, err)
}

// jsonKind names the JSON kind that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		if t == reflect.TypeFor[json.Number]() {
			return "number"
		}
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// lineCol converts a byte offset in data to a 1-based line and column.
func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:max(offset, 0)]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// decode unmarshals the JSON at field into v.
func (p *parser) decode(raw []byte, field string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return p.jsonError(raw, field, err)
	}
	return nil
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

type rawFile struct {
	Version       *string           `json:"version"`
	AddedTokens   []json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage   `json:"normalizer"`
	PreTokenizer  json.RawMessage   `json:"pre_tokenizer"`
	PostProcessor json.RawMessage   `json:"post_processor"`
	Decoder       json.RawMessage   `json:"decoder"`
	Model         json.RawMessage   `json:"model"`
}

type rawModel struct {
	Type                    *string                `json:"type"`
	Dropout                 *float64               `json:"dropout"`
	UnkToken                *string                `json:"unk_token"`
	ContinuingSubwordPrefix *string                `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string                `json:"end_of_word_suffix"`
	FuseUnk                 *bool                  `json:"fuse_unk"`
	ByteFallback            *bool                  `json:"byte_fallback"`
	IgnoreMerges            *bool                  `json:"ignore_merges"`
	Vocab                   map[string]json.Number `json:"vocab"`
	Merges                  json.RawMessage        `json:"merges"`
}

type rawAddedToken struct {
	ID         *json.Number `json:"id"`
	Content    *string      `json:"content"`
	SingleWord bool         `json:"single_word"`
	Lstrip     bool         `json:"lstrip"`
	Rstrip     bool         `json:"rstrip"`
	Normalized *bool        `json:"normalized"`
	Special    bool         `json:"special"`
}

// rawComponent holds the fields of every normalizer, pre-tokenizer,
// decoder and post-processor this package knows; type says which.
type rawComponent struct {
	Type           *string                    `json:"type"`
	Normalizers    []json.RawMessage          `json:"normalizers"`
	PreTokenizers  []json.RawMessage          `json:"pretokenizers"`
	Decoders       []json.RawMessage          `json:"decoders"`
	Processors     []json.RawMessage          `json:"processors"`
	Pattern        *rawPattern                `json:"pattern"`
	Content        *string                    `json:"content"`
	Prepend        *string                    `json:"prepend"`
	Behavior       *string                    `json:"behavior"`
	Invert         *bool                      `json:"invert"`
	AddPrefixSpace *bool                      `json:"add_prefix_space"`
	UseRegex       *bool                      `json:"use_regex"`
	Replacement    *string                    `json:"replacement"`
	PrependScheme  *string                    `json:"prepend_scheme"`
	Split          *bool                      `json:"split"`
	Start          *int                       `json:"start"`
	Stop           *int                       `json:"stop"`
	StripLeft      *bool                      `json:"strip_left"`
	StripRight     *bool                      `json:"strip_right"`
	Single         []map[string]rawTemplateID `json:"single"`
	SpecialTokens  map[string]rawSpecialToken `json:"special_tokens"`
	Sep            []json.RawMessage          `json:"sep"`
	Cls            []json.RawMessage          `json:"cls"`
	Suffix         *string                    `json:"suffix"`
}

type rawPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type rawTemplateID struct {
	ID *string `json:"id"`
}

type rawSpecialToken struct {
	IDs []json.Number `json:"ids"`
}

func (p *parser) parse(data []byte) (*Tokenizer, error) {
	var f rawFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, p.jsonError(data, "tokenizer", err)
	}
	if f.Version != nil && *f.Version != "1.0" {
		return nil, p.errorf("version", "unknown version %q, want \"1.0\"", *f.Version)
	}
	if isNull(f.Model) {
		return nil, p.errorf("model", "missing")
	}
	model, err := p.parseModel(f.Model)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{model: model}
	if !isNull(f.Normalizer) {
		if t.norm, err = p.parseNormalizer(f.Normalizer, "normalizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pre, err = p.parsePreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.Decoder) {
		if t.dec, err = p.parseDecoder(f.Decoder, "decoder"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = p.parsePostProcessor(f.PostProcessor, "post_processor"); err != nil {
			return nil, err
		}
	}
	t.vocabR = model.vocabR
	maxID := int32(-1)
	for id := range model.vocabR {
		maxID = max(maxID, id)
	}
	if err := p.parseAdded(t, f.AddedTokens); err != nil {
		return nil, err
	}
	for _, a := range t.added {
		maxID = max(maxID, a.id)
	}
	t.vocabSize = int(maxID) + 1
	return t, nil
}

// parseID reads a token id, which must fit an int32 and not be negative.
func (p *parser) parseID(n json.Number, field string) (int32, error) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v < 0 || v > math.MaxInt32 {
		return 0, p.errorf(field, "id %s out of range: want an integer in [0, %d]", n, math.MaxInt32)
	}
	return int32(v), nil
}

func (p *parser) parseModel(raw json.RawMessage) (*bpeModel, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := p.decode(raw, "model", &head); err != nil {
		return nil, err
	}
	if head.Type != nil {
		switch *head.Type {
		case "BPE":
		case "WordPiece", "Unigram", "WordLevel":
			return nil, p.errorf("model.type", "model %q is unsupported: only BPE is implemented", *head.Type)
		default:
			return nil, p.errorf("model.type", "unknown model type %q", *head.Type)
		}
	}
	var rm rawModel
	if err := p.decode(raw, "model", &rm); err != nil {
		return nil, p.badVocab(raw, err)
	}
	if rm.Vocab == nil {
		return nil, p.errorf("model.vocab", "missing")
	}
	if isNull(rm.Merges) {
		return nil, p.errorf("model.merges", "missing")
	}
	if rm.Dropout != nil && *rm.Dropout != 0 {
		return nil, p.errorf("model.dropout", "dropout %v is unsupported: BPE dropout makes encoding random", *rm.Dropout)
	}
	m := &bpeModel{
		vocab:        make(map[string]int32, len(rm.Vocab)),
		unkID:        -1,
		fuseUnk:      rm.FuseUnk != nil && *rm.FuseUnk,
		byteFallback: rm.ByteFallback != nil && *rm.ByteFallback,
		ignoreMerges: rm.IgnoreMerges != nil && *rm.IgnoreMerges,
		cache:        newWordCache(wordCacheSize),
	}
	if rm.ContinuingSubwordPrefix != nil {
		m.prefix = *rm.ContinuingSubwordPrefix
	}
	if rm.EndOfWordSuffix != nil {
		m.suffix = *rm.EndOfWordSuffix
	}
	if err := p.parseVocab(m, rm.Vocab); err != nil {
		return nil, err
	}
	if rm.UnkToken != nil {
		id, ok := m.vocab[*rm.UnkToken]
		if !ok {
			return nil, p.errorf("model.unk_token", "token %q not in vocab", *rm.UnkToken)
		}
		m.unkID = id
	}
	if len(rm.Vocab) == 0 {
		// Every word would be dropped: a prompt would encode to its
		// special tokens alone.
		return nil, p.errorf("model.vocab", "empty: the tokenizer has no tokens to encode text with")
	}
	for b := range m.byteIDs {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	merges, err := p.parseMerges(rm.Merges)
	if err != nil {
		return nil, err
	}
	m.merges = make(map[uint64]mergeRule, len(merges))
	for rank, mg := range merges {
		field := fmt.Sprintf("model.merges[%d]", mg.index)
		a, ok := m.vocab[mg.a]
		if !ok {
			return nil, p.errorf(field, "token %q not in vocab", mg.a)
		}
		b, ok := m.vocab[mg.b]
		if !ok {
			return nil, p.errorf(field, "token %q not in vocab", mg.b)
		}
		right := mg.b
		if m.prefix != "" {
			if len(right) < len(m.prefix) {
				return nil, p.errorf(field, "token %q is shorter than continuing_subword_prefix %q", mg.b, m.prefix)
			}
			right = right[len(m.prefix):]
		}
		merged, ok := m.vocab[mg.a+right]
		if !ok {
			return nil, p.errorf(field, "merged token %q not in vocab", mg.a+right)
		}
		// A pair listed twice keeps its last rank, as in tokenizers.
		m.merges[pairKey(a, b)] = mergeRule{rank: int32(rank), id: merged}
	}
	m.vocabR = make(map[int32]string, len(m.vocab))
	for tok, id := range m.vocab {
		m.vocabR[id] = tok
	}
	m.setCut("\u2581")
	return m, nil
}

// badVocab improves err, from decoding the model, when the cause is a
// vocab id that is not a number.
func (p *parser) badVocab(raw json.RawMessage, err error) error {
	var m struct {
		Vocab map[string]json.RawMessage `json:"vocab"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return err
	}
	keys := make([]string, 0, len(m.Vocab))
	for tok := range m.Vocab {
		keys = append(keys, tok)
	}
	slices.Sort(keys)
	for _, tok := range keys {
		var n json.Number
		if json.Unmarshal(m.Vocab[tok], &n) != nil {
			return p.errorf(fmt.Sprintf("model.vocab[%q]", tok), "id %s is not a number", m.Vocab[tok])
		}
	}
	return err
}

// Bounds the word cache of a model; a word is a few dozen bytes.
const wordCacheSize = 1 << 16

func (p *parser) parseVocab(m *bpeModel, vocab map[string]json.Number) error {
	owner := make(map[int32]string, len(vocab))
	var bad []string // tokens with a problem, reported smallest first
	for tok, n := range vocab {
		id, err := p.parseID(n, "")
		if err != nil {
			bad = append(bad, tok)
			continue
		}
		if other, dup := owner[id]; dup {
			bad = append(bad, tok, other)
			continue
		}
		owner[id] = tok
		m.vocab[tok] = id
	}
	if len(bad) == 0 {
		return nil
	}
	// Find the first problem in token order, so errors are reproducible.
	keys := make([]string, 0, len(vocab))
	for tok := range vocab {
		keys = append(keys, tok)
	}
	slices.Sort(keys)
	owner = make(map[int32]string, len(vocab))
	for _, tok := range keys {
		field := fmt.Sprintf("model.vocab[%q]", tok)
		id, err := p.parseID(vocab[tok], field)
		if err != nil {
			return err
		}
		if other, dup := owner[id]; dup {
			return p.errorf(field, "duplicate id %d, already the id of %q", id, other)
		}
		owner[id] = tok
	}
	return p.errorf("model.vocab", "invalid")
}

// merge is one entry of model.merges.
type merge struct {
	a, b  string
	index int // in the JSON list
}

// parseMerges reads model.merges, either "a b" strings or ["a", "b"] pairs.
func (p *parser) parseMerges(raw json.RawMessage) ([]merge, error) {
	var lines []string
	if json.Unmarshal(raw, &lines) == nil {
		out := make([]merge, 0, len(lines))
		for i, line := range lines {
			if strings.HasPrefix(line, "#version") {
				continue
			}
			a, b, ok := strings.Cut(line, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, p.errorf(fmt.Sprintf("model.merges[%d]", i), "%q is not two tokens separated by one space", line)
			}
			out = append(out, merge{a, b, i})
		}
		return out, nil
	}
	var pairs [][]string
	if json.Unmarshal(raw, &pairs) == nil {
		out := make([]merge, 0, len(pairs))
		for i, pair := range pairs {
			if len(pair) != 2 {
				return nil, p.errorf(fmt.Sprintf("model.merges[%d]", i), "pair has %d tokens, want 2", len(pair))
			}
			out = append(out, merge{pair[0], pair[1], i})
		}
		return out, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, p.errorf("model.merges", "want a list of \"a b\" strings or of [\"a\", \"b\"] pairs")
	}
	var s string
	var pair []string
	firstIsString := len(elems) > 0 && json.Unmarshal(elems[0], &s) == nil
	for i, e := range elems {
		isString := json.Unmarshal(e, &s) == nil
		isPair := !isString && json.Unmarshal(e, &pair) == nil
		if (!isString && !isPair) || isString != firstIsString {
			return nil, p.errorf(fmt.Sprintf("model.merges[%d]", i), "want %s like model.merges[0]", map[bool]string{true: "an \"a b\" string", false: "an [\"a\", \"b\"] pair"}[firstIsString])
		}
	}
	return nil, p.errorf("model.merges", "want a list of \"a b\" strings or of [\"a\", \"b\"] pairs")
}

// parseAdded reads added_tokens and assigns ids the way tokenizers does:
// a token in the model vocabulary keeps its id, the others take the ids
// after the vocabulary in order. A file whose ids differ is rejected.
func (p *parser) parseAdded(t *Tokenizer, raws []json.RawMessage) error {
	t.addedByID = make(map[int32]*addedToken)
	t.addedIDs = make(map[string]int32)
	t.special = make(map[string]bool)
	next := int64(len(t.model.vocab))
	index := make(map[string]int) // content to position in t.added
	owner := make(map[int32]string)
	for i, raw := range raws {
		field := fmt.Sprintf("added_tokens[%d]", i)
		var ra rawAddedToken
		if err := p.decode(raw, field, &ra); err != nil {
			return err
		}
		if ra.Content == nil {
			return p.errorf(field+".content", "missing")
		}
		if ra.ID == nil {
			return p.errorf(field+".id", "missing")
		}
		given, err := p.parseID(*ra.ID, field+".id")
		if err != nil {
			return err
		}
		content := *ra.Content
		if content == "" {
			continue // tokenizers ignores empty added tokens
		}
		a := addedToken{
			content:    content,
			special:    ra.Special,
			singleWord: ra.SingleWord,
			lstrip:     ra.Lstrip,
			rstrip:     ra.Rstrip,
			normalized: !ra.Special,
		}
		if ra.Normalized != nil {
			a.normalized = *ra.Normalized
		}
		var id int64
		k, seen := index[content]
		if seen {
			id = int64(t.added[k].id)
		} else if vid, ok := t.model.vocab[content]; ok {
			id = int64(vid)
		} else {
			id = next
			next++
		}
		if int64(given) != id {
			other, ok := owner[given]
			if !ok {
				other, ok = t.vocabR[given]
			}
			if ok && other != content {
				return p.errorf(field+".id", "duplicate id %d: %q has it already", given, other)
			}
			return p.errorf(field+".id", "%q has id %d, but tokenizers gives it id %d (tokens of model.vocab keep their id, the others follow the vocab in order)", content, given, id)
		}
		if other, ok := t.vocabR[given]; ok && other != content {
			return p.errorf(field+".id", "duplicate id %d: %q has it already", given, other)
		}
		a.id = given
		a.pattern = content
		if a.normalized && t.norm != nil {
			a.pattern = t.norm.normalize(piece{content, true}).text
			if a.pattern == "" {
				return p.errorf(field+".content", "%q normalizes to the empty string", content)
			}
		}
		if a.special {
			t.special[content] = true
		}
		if seen {
			t.added[k] = a
		} else {
			index[content] = len(t.added)
			t.added = append(t.added, a)
		}
		t.addedIDs[content] = a.id
		owner[a.id] = content
	}
	raw, normed := newTrie(), newTrie()
	rawSeen, normSeen := map[string]bool{}, map[string]bool{}
	for k := range t.added {
		a := &t.added[k]
		t.addedByID[a.id] = a
		tr, seen := raw, rawSeen
		if a.normalized {
			tr, seen = normed, normSeen
		}
		if seen[a.pattern] {
			return p.errorf("added_tokens", "two added tokens match %q", a.pattern)
		}
		seen[a.pattern] = true
		tr.insert(a.pattern, int32(k))
	}
	if len(rawSeen) > 0 {
		t.rawTrie = raw
	}
	if len(normSeen) > 0 {
		t.normTrie = normed
	}
	return nil
}

// componentType decodes raw and returns it with its type.
func (p *parser) component(raw json.RawMessage, field string) (*rawComponent, string, error) {
	var c rawComponent
	if err := p.decode(raw, field, &c); err != nil {
		return nil, "", err
	}
	if c.Type == nil {
		return nil, "", p.errorf(field+".type", "missing")
	}
	return &c, *c.Type, nil
}

// pattern reads the {"String": ...} or {"Regex": ...} pattern of a Split or
// Replace.
func (p *parser) pattern(c *rawComponent, field string) (literal string, re *rawRegex, err error) {
	switch {
	case c.Pattern == nil:
		return "", nil, p.errorf(field+".pattern", "missing")
	case c.Pattern.String != nil && c.Pattern.Regex == nil:
		return *c.Pattern.String, nil, nil
	case c.Pattern.Regex != nil && c.Pattern.String == nil:
		return "", &rawRegex{*c.Pattern.Regex}, nil
	}
	return "", nil, p.errorf(field+".pattern", "want exactly one of String and Regex")
}

type rawRegex struct{ expr string }

func (p *parser) parseNormalizer(raw json.RawMessage, field string) (normalizer, error) {
	c, typ, err := p.component(raw, field)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq sequenceNorm
		for i, sub := range c.Normalizers {
			n, err := p.parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, n)
		}
		return seq, nil
	case "Prepend":
		if c.Prepend == nil {
			return nil, p.errorf(field+".prepend", "missing")
		}
		return prependNorm{*c.Prepend}, nil
	case "Replace":
		r, err := p.replace(c, field)
		if err != nil {
			return nil, err
		}
		return r, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Strip":
		return stripNorm{c.StripLeft != nil && *c.StripLeft, c.StripRight != nil && *c.StripRight}, nil
	}
	return nil, p.errorf(field+".type", "unsupported normalizer %q (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Strip)", typ)
}

// replace reads a Replace normalizer or decoder.
func (p *parser) replace(c *rawComponent, field string) (replaceNorm, error) {
	lit, re, err := p.pattern(c, field)
	if err != nil {
		return replaceNorm{}, err
	}
	if c.Content == nil {
		return replaceNorm{}, p.errorf(field+".content", "missing")
	}
	r := replaceNorm{literal: lit, content: *c.Content}
	if re != nil {
		if r.re, err = compileRegex(re.expr); err != nil {
			return replaceNorm{}, p.errorf(field+".pattern.Regex", "%v", err)
		}
	}
	return r, nil
}

func (p *parser) parsePreTokenizer(raw json.RawMessage, field string) (preTokenizer, error) {
	c, typ, err := p.component(raw, field)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq sequencePre
		for i, sub := range c.PreTokenizers {
			pt, err := p.parsePreTokenizer(sub, fmt.Sprintf("%s.pretokenizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, pt)
		}
		return seq, nil
	case "Split":
		lit, re, err := p.pattern(c, field)
		if err != nil {
			return nil, err
		}
		if c.Behavior == nil {
			return nil, p.errorf(field+".behavior", "missing")
		}
		b, ok := behaviors[*c.Behavior]
		if !ok {
			return nil, p.errorf(field+".behavior", "unknown behavior %q", *c.Behavior)
		}
		s := &splitPre{m: literalMatcher{lit}, behavior: b, invert: c.Invert != nil && *c.Invert}
		if re != nil {
			if scan := knownScanner(re.expr); scan != nil {
				s.m = scanMatcher{scan}
			} else {
				compiled, err := compileRegex(re.expr)
				if err != nil {
					return nil, p.errorf(field+".pattern.Regex", "%v", err)
				}
				s.m = regexMatcher{compiled}
			}
		}
		return s, nil
	case "ByteLevel":
		return &byteLevelPre{
			addPrefixSpace: c.AddPrefixSpace == nil || *c.AddPrefixSpace,
			useRegex:       c.UseRegex == nil || *c.UseRegex,
			table:          p.table,
		}, nil
	case "Metaspace":
		repl, scheme, err := p.metaspace(c, field)
		if err != nil {
			return nil, err
		}
		return &metaspacePre{replacement: repl, scheme: scheme, splitAtRepl: c.Split == nil || *c.Split}, nil
	}
	return nil, p.errorf(field+".type", "unsupported pre-tokenizer %q (supported: Sequence, Split, ByteLevel, Metaspace)", typ)
}

// metaspace reads the replacement and prepend scheme of a Metaspace, old
// files giving add_prefix_space instead of prepend_scheme.
func (p *parser) metaspace(c *rawComponent, field string) (string, prependScheme, error) {
	if c.Replacement == nil {
		return "", 0, p.errorf(field+".replacement", "missing")
	}
	if !validRune(*c.Replacement) {
		return "", 0, p.errorf(field+".replacement", "%q is not a single character", *c.Replacement)
	}
	scheme := prependAlways
	if c.PrependScheme != nil {
		switch *c.PrependScheme {
		case "always":
		case "first":
			scheme = prependFirst
		case "never":
			scheme = prependNever
		default:
			return "", 0, p.errorf(field+".prepend_scheme", "unknown scheme %q (want always, first or never)", *c.PrependScheme)
		}
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		if c.PrependScheme != nil && scheme != prependNever {
			return "", 0, p.errorf(field+".add_prefix_space", "false does not match prepend_scheme %q", *c.PrependScheme)
		}
		scheme = prependNever
	}
	return *c.Replacement, scheme, nil
}

func (p *parser) parseDecoder(raw json.RawMessage, field string) (decoder, error) {
	c, typ, err := p.component(raw, field)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq sequenceDec
		for i, sub := range c.Decoders {
			d, err := p.parseDecoder(sub, fmt.Sprintf("%s.decoders[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, d)
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDec{p.table}, nil
	case "Replace":
		r, err := p.replace(c, field)
		if err != nil {
			return nil, err
		}
		return replaceDec{r}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		if c.Content == nil || !validRune(*c.Content) {
			return nil, p.errorf(field+".content", "want a single character")
		}
		d := stripDec{}
		d.content, _ = utf8.DecodeRuneInString(*c.Content)
		if c.Start != nil {
			d.start = *c.Start
		}
		if c.Stop != nil {
			d.stop = *c.Stop
		}
		if d.start < 0 || d.stop < 0 {
			return nil, p.errorf(field, "start %d and stop %d must not be negative", d.start, d.stop)
		}
		return d, nil
	case "Metaspace":
		repl, scheme, err := p.metaspace(c, field)
		if err != nil {
			return nil, err
		}
		r, _ := utf8.DecodeRuneInString(repl)
		return metaspaceDec{replacement: r, scheme: scheme}, nil
	case "BPEDecoder":
		d := bpeDec{suffix: "</w>"}
		if c.Suffix != nil {
			d.suffix = *c.Suffix
		}
		return d, nil
	}
	return nil, p.errorf(field+".type", "unsupported decoder %q (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, BPEDecoder)", typ)
}

func (p *parser) parsePostProcessor(raw json.RawMessage, field string) (postProcessor, error) {
	c, typ, err := p.component(raw, field)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq sequencePost
		for i, sub := range c.Processors {
			pp, err := p.parsePostProcessor(sub, fmt.Sprintf("%s.processors[%d]", field, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, pp)
		}
		return seq, nil
	case "ByteLevel":
		return nopPost{}, nil
	case "TemplateProcessing":
		return p.template(c, field)
	case "BertProcessing", "RobertaProcessing":
		cls, err := p.tokenPair(c.Cls, field+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := p.tokenPair(c.Sep, field+".sep")
		if err != nil {
			return nil, err
		}
		return wrapPost{cls: cls, sep: sep}, nil
	}
	return nil, p.errorf(field+".type", "unsupported post-processor %q (supported: Sequence, ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing)", typ)
}

// tokenPair reads the ["<s>", 0] form of Bert and Roberta processors.
func (p *parser) tokenPair(raw []json.RawMessage, field string) (int32, error) {
	var tok string
	var n json.Number
	if len(raw) != 2 || json.Unmarshal(raw[0], &tok) != nil || json.Unmarshal(raw[1], &n) != nil {
		return 0, p.errorf(field, "want [token, id]")
	}
	return p.parseID(n, field)
}

func (p *parser) template(c *rawComponent, field string) (postProcessor, error) {
	if c.Single == nil {
		return nil, p.errorf(field+".single", "missing")
	}
	var t templatePost
	for i, entry := range c.Single {
		f := fmt.Sprintf("%s.single[%d]", field, i)
		if len(entry) != 1 {
			return nil, p.errorf(f, "want one of {\"SpecialToken\": ...} and {\"Sequence\": ...}")
		}
		for kind, ref := range entry {
			if ref.ID == nil {
				return nil, p.errorf(f+"."+kind+".id", "missing")
			}
			switch kind {
			case "Sequence":
				if *ref.ID != "A" {
					return nil, p.errorf(f+".Sequence.id", "sequence %q in a single template, want \"A\"", *ref.ID)
				}
				t.single = append(t.single, templatePiece{sequence: true})
			case "SpecialToken":
				st, ok := c.SpecialTokens[*ref.ID]
				if !ok {
					return nil, p.errorf(f+".SpecialToken.id", "%q not in %s.special_tokens", *ref.ID, field)
				}
				ids := make([]int32, 0, len(st.IDs))
				for k, n := range st.IDs {
					id, err := p.parseID(n, fmt.Sprintf("%s.special_tokens[%q].ids[%d]", field, *ref.ID, k))
					if err != nil {
						return nil, err
					}
					ids = append(ids, id)
				}
				t.single = append(t.single, templatePiece{ids: ids})
			default:
				return nil, p.errorf(f, "unknown template piece %q", kind)
			}
		}
	}
	return t, nil
}
