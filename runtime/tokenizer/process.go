package tokenizer

// postProcessor adds the special tokens around an encoded sequence.
type postProcessor interface {
	// process returns ids with the special tokens added.
	process(ids []int32) []int32
}

// templatePost is TemplateProcessing for a single sequence.
type templatePost struct{ single []templatePiece }

// templatePiece is the sequence itself or the ids of a special token.
type templatePiece struct {
	sequence bool
	ids      []int32
}

func (t templatePost) process(ids []int32) []int32 {
	n := len(ids)
	for _, p := range t.single {
		n += len(p.ids)
	}
	out := make([]int32, 0, n)
	for _, p := range t.single {
		if p.sequence {
			out = append(out, ids...)
		} else {
			out = append(out, p.ids...)
		}
	}
	return out
}

// wrapPost is BertProcessing and RobertaProcessing: cls, sequence, sep.
type wrapPost struct{ cls, sep int32 }

func (w wrapPost) process(ids []int32) []int32 {
	out := make([]int32, 0, len(ids)+2)
	out = append(out, w.cls)
	out = append(out, ids...)
	return append(out, w.sep)
}

// sequencePost runs post-processors one after the other.
type sequencePost []postProcessor

func (s sequencePost) process(ids []int32) []int32 {
	for _, p := range s {
		ids = p.process(ids)
	}
	return ids
}

// nopPost is a post-processor that adds nothing, such as ByteLevel, which
// only trims offsets.
type nopPost struct{}

func (nopPost) process(ids []int32) []int32 { return ids }
