package experiments

import (
	"fmt"

	"kvcascade/datasets/ruler"
	"kvcascade/policies/params"
)

// check refuses, before anything runs, what no ruler point can use: an
// unknown task, a qa task without its file, lengths, samples or answer
// tokens out of range, a chat template without {prompt}.
func (x rulerExp) check(p params.Values) error {
	task, err := ruler.Lookup(p.String("task"))
	if err != nil {
		return fmt.Errorf("experiment ruler: parameter task: %w", err)
	}
	for _, c := range []struct {
		name string
		lo   int
	}{{"length", 1}, {"samples", 1}, {"answer_tokens", 0}} {
		if err := atLeast(x.Name(), c.name, p.Int(c.name), c.lo); err != nil {
			return err
		}
	}
	if task.Family == ruler.FamilyQA && p.String("qa") == "" {
		return fmt.Errorf("experiment ruler: parameter qa: task %s needs a %s-format JSON file", task.Name, task.Format)
	}
	if _, err := ruler.ApplyTemplate(p.String("template"), ""); err != nil {
		return fmt.Errorf("experiment ruler: parameter template: %w", err)
	}
	return nil
}

func (rulerExp) paths() []string { return []string{"essay", "words", "qa"} }

// checkFiles reads the files the point's task uses: the essay text for an
// essay haystack, the word list, the QA file of a qa task.
func (rulerExp) checkFiles(p params.Values, files *Files) error {
	task, err := ruler.Lookup(p.String("task"))
	if err != nil {
		return fmt.Errorf("experiment ruler: parameter task: %w", err)
	}
	if path := p.String("words"); path != "" {
		if err := files.once("ruler-words\x00"+path, func() error {
			_, err := ruler.LoadWords(path)
			return err
		}); err != nil {
			return fmt.Errorf("experiment ruler: parameter words: %w", err)
		}
	}
	if task.Haystack == ruler.HaystackEssay {
		path := p.String("essay")
		if path == "" {
			path = ruler.DefaultEssay
		}
		if err := files.once("ruler-essay\x00"+path, func() error {
			_, err := ruler.LoadEssay(path)
			return err
		}); err != nil {
			return fmt.Errorf("experiment ruler: parameter essay: %w", err)
		}
	}
	if path := p.String("qa"); task.Family == ruler.FamilyQA && path != "" {
		if err := files.once("ruler-qa\x00"+path, func() error {
			_, err := ruler.LoadQA(path)
			return err
		}); err != nil {
			return fmt.Errorf("experiment ruler: parameter qa: %w", err)
		}
	}
	return nil
}
