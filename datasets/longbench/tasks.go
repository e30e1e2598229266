package longbench

import (
	"fmt"
	"strconv"
	"strings"
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

// Task is one LongBench subset with the settings of the official code.
type Task struct {
	// Name is the subset name, as in the data files ("hotpotqa").
	Name string
	// Template is the prompt template, with "{context}" and "{input}"
	// placeholders in Python str.format syntax.
	Template string
	// MaxNewTokens is the generation length.
	MaxNewTokens int
	// MetricName is the name of the metric function in metrics.py.
	MetricName string
	// Metric scores one prediction against one answer.
	Metric Metric
	// FirstLine is set where eval.py scores only the first line of the
	// prediction (after leading newlines): trec, triviaqa, samsum, lsht.
	FirstLine bool
	// Chat is set where pred.py wraps the prompt in the chat template; the
	// few-shot and code subsets go to the model without it.
	Chat bool
	// StopAtNewline is set where pred.py also ends generation at a newline
	// token (samsum, against endless "\nDialogue" repetition).
	StopAtNewline bool
}

// Templates of config/dataset2prompt.json; several subsets share one.
const (
	passagesQA = "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\n" +
		"The following are given passages.\n{context}\n\n" +
		"Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\n" +
		"Question: {input}\nAnswer:"
	qasperHow = "Answer the question as concisely as you can, using a single phrase or sentence if possible. " +
		"If the question cannot be answered based on the information in the article, write \"unanswerable\". " +
		"If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation."
)

// Tasks returns the supported subsets in the order of the LongBench paper.
func Tasks() []Task {
	return []Task{
		// "asconcisely" (twice) is in the official template since August
		// 2023; it is kept so that prompts match published results.
		{Name: "narrativeqa", MaxNewTokens: 128, MetricName: "qa_f1_score", Metric: QAF1, Chat: true,
			Template: "You are given a story, which can be either a novel or a movie script, and a question. " +
				"Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\n" +
				"Story: {context}\n\n" +
				"Now, answer the question based on the story asconcisely as you can, using a single phrase if possible. " +
				"Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:"},
		{Name: "qasper", MaxNewTokens: 128, MetricName: "qa_f1_score", Metric: QAF1, Chat: true,
			Template: "You are given a scientific article and a question. " + qasperHow + "\n\n" +
				"Article: {context}\n\n " +
				"Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. " +
				"If the question cannot be answered based on the information in the article, write \"unanswerable\". " +
				"If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\n" +
				"Question: {input}\n\nAnswer:"},
		{Name: "multifieldqa_en", MaxNewTokens: 64, MetricName: "qa_f1_score", Metric: QAF1, Chat: true,
			Template: "Read the following text and answer briefly.\n\n{context}\n\n" +
				"Now, answer the following question based on the above text, only give me the answer and do not output any other words.\n\n" +
				"Question: {input}\nAnswer:"},
		{Name: "hotpotqa", MaxNewTokens: 32, MetricName: "qa_f1_score", Metric: QAF1, Chat: true, Template: passagesQA},
		{Name: "2wikimqa", MaxNewTokens: 32, MetricName: "qa_f1_score", Metric: QAF1, Chat: true, Template: passagesQA},
		{Name: "musique", MaxNewTokens: 32, MetricName: "qa_f1_score", Metric: QAF1, Chat: true, Template: passagesQA},
		{Name: "gov_report", MaxNewTokens: 512, MetricName: "rouge_score", Metric: RougeL, Chat: true,
			Template: "You are given a report by a government agency. Write a one-page summary of the report.\n\n" +
				"Report:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:"},
		{Name: "qmsum", MaxNewTokens: 512, MetricName: "rouge_score", Metric: RougeL, Chat: true,
			Template: "You are given a meeting transcript and a query containing a question or instruction. " +
				"Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\n" +
				"Now, answer the query based on the above meeting transcript in one or more sentences.\n\n" +
				"Query: {input}\nAnswer:"},
		{Name: "multi_news", MaxNewTokens: 512, MetricName: "rouge_score", Metric: RougeL, Chat: true,
			Template: "You are given several news passages. Write a one-page summary of all news. \n\n" +
				"News:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:"},
		{Name: "trec", MaxNewTokens: 64, MetricName: "classification_score", Metric: Classification, FirstLine: true,
			Template: "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}"},
		{Name: "triviaqa", MaxNewTokens: 32, MetricName: "qa_f1_score", Metric: QAF1, FirstLine: true,
			Template: "Answer the question based on the given passage. Only give me the answer and do not output any other words. " +
				"The following are some examples.\n\n{context}\n\n{input}"},
		{Name: "samsum", MaxNewTokens: 128, MetricName: "rouge_score", Metric: RougeL, FirstLine: true, StopAtNewline: true,
			Template: "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}"},
		{Name: "lsht", MaxNewTokens: 64, MetricName: "classification_score", Metric: Classification, FirstLine: true,
			Template: "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}"},
		{Name: "passage_count", MaxNewTokens: 32, MetricName: "count_score", Metric: Count, Chat: true,
			Template: "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. " +
				"Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. " +
				"In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\n" +
				"Please enter the final count of unique paragraphs after removing duplicates. " +
				"The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: "},
		{Name: "passage_retrieval_en", MaxNewTokens: 32, MetricName: "retrieval_score", Metric: Retrieval, Chat: true,
			Template: "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n" +
				"{context}\n\nThe following is an abstract.\n\n{input}\n\n" +
				"Please enter the number of the paragraph that the abstract is from. " +
				"The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: "},
		{Name: "passage_retrieval_zh", MaxNewTokens: 32, MetricName: "retrieval_zh_score", Metric: RetrievalZh, Chat: true,
			Template: "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n" +
				"请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是："},
		{Name: "lcc", MaxNewTokens: 64, MetricName: "code_sim_score", Metric: CodeSim,
			Template: "Please complete the code given below. \n{context}Next line of code:\n"},
		{Name: "repobench-p", MaxNewTokens: 64, MetricName: "code_sim_score", Metric: CodeSim,
			Template: "Please complete the code given below. \n{context}{input}Next line of code:\n"},
	}
}

// Lookup returns the task of a subset. LongBench-E names ("hotpotqa_e")
// give the task of the subset they sample.
func Lookup(name string) (Task, bool) {
	base := strings.TrimSuffix(name, "_e")
	for _, t := range Tasks() {
		if t.Name == name || t.Name == base {
			return t, true
		}
	}
	return Task{}, false
}

// Fill fills a template in Python str.format syntax with the fields of s:
// "{input}", "{context}", "{dataset}", "{_id}" and "{length}"; "{{" and
// "}}" stand for braces. The template is read once, so braces inside the
// field values (code, in lcc) are left alone.
func Fill(template string, s Sample) (string, error) {
	var b strings.Builder
	b.Grow(len(template) + len(s.Context) + len(s.Input))
	for i := 0; i < len(template); {
		c := template[i]
		switch {
		case c == '{' && i+1 < len(template) && template[i+1] == '{':
			b.WriteByte('{')
			i += 2
		case c == '}' && i+1 < len(template) && template[i+1] == '}':
			b.WriteByte('}')
			i += 2
		case c == '}':
			return "", fmt.Errorf("longbench: template: single '}' at byte %d", i)
		case c == '{':
			j := strings.IndexByte(template[i:], '}')
			if j < 0 {
				return "", fmt.Errorf("longbench: template: unclosed '{' at byte %d", i)
			}
			name := template[i+1 : i+j]
			switch name {
			case "input":
				b.WriteString(s.Input)
			case "context":
				b.WriteString(s.Context)
			case "dataset":
				b.WriteString(s.Dataset)
			case "_id":
				b.WriteString(s.ID)
			case "length":
				b.WriteString(strconv.Itoa(s.Length))
			default:
				return "", fmt.Errorf("longbench: template: unknown placeholder {%s} at byte %d", name, i)
			}
			i += j + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// TruncateMiddle cuts prompt to at most maxTokens tokens of tok the way
// pred.py does: if Encode(prompt, true) is longer than maxTokens, the result
// is the decoded first maxTokens/2 tokens followed by the decoded last
// maxTokens/2 tokens, special tokens skipped. A prompt that fits is returned
// unchanged. maxTokens must be at least 2.
func TruncateMiddle(tok Tokenizer, prompt string, maxTokens int) (string, error) {
	if maxTokens < 2 {
		return "", fmt.Errorf("longbench: token limit %d is below 2", maxTokens)
	}
	ids := tok.Encode(prompt, true)
	if len(ids) <= maxTokens {
		return prompt, nil
	}
	half := maxTokens / 2
	return tok.Decode(ids[:half], true) + tok.Decode(ids[len(ids)-half:], true), nil
}

// Prompt builds the prompt of s for the model: the template filled, cut in
// the middle to maxTokens when maxTokens > 0, and put into chat at its
// single "{prompt}" placeholder when the task uses the chat template and
// chat is not empty.
func (t Task) Prompt(s Sample, tok Tokenizer, maxTokens int, chat string) (string, error) {
	p, err := Fill(t.Template, s)
	if err != nil {
		return "", fmt.Errorf("%s: %w", t.Name, err)
	}
	if maxTokens > 0 {
		if p, err = TruncateMiddle(tok, p, maxTokens); err != nil {
			return "", err
		}
	}
	if !t.Chat || chat == "" {
		return p, nil
	}
	if n := strings.Count(chat, "{prompt}"); n != 1 {
		return "", fmt.Errorf("longbench: chat template must contain {prompt} exactly once, found %d", n)
	}
	return strings.Replace(chat, "{prompt}", p, 1), nil
}

// Score scores a prediction for a sample as eval.py does: the first line
// only where the task says so, then the best score over the answers.
func (t Task) Score(prediction string, answers, allClasses []string) float64 {
	if t.FirstLine {
		prediction = FirstLine(prediction)
	}
	best := 0.0
	for _, a := range answers {
		best = max(best, t.Metric(prediction, a, allClasses))
	}
	return best
}

// FirstLine returns the first line of s after leading newlines, as eval.py's
// prediction.lstrip('\n').split('\n')[0].
func FirstLine(s string) string {
	s = strings.TrimLeft(s, "\n")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Mean returns 100 times the mean of per-sample scores, the number eval.py
// reports (before it rounds to two decimals); 0 for no scores.
func Mean(scores []float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	sum := 0.0
	for _, s := range scores {
		sum += s
	}
	return 100 * sum / float64(len(scores))
}

// LengthBucket returns the LongBench-E length bucket of a sample length:
// "0-4k", "4-8k" or "8k+".
func LengthBucket(length int) string {
	switch {
	case length < 4000:
		return "0-4k"
	case length < 8000:
		return "4-8k"
	}
	return "8k+"
}
