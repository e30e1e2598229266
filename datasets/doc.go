// Package datasets is the home of the evaluation data of kvcascade. It holds
// no code of its own; each data set is a subpackage:
//
//   - passkey: the passkey retrieval prompts of the paper (random dictionary
//     words, a five-digit key at a depth bin, exact-match scoring), and
//     training documents in the same layout.
//   - longtext: streaming of long plain text (a UTF-8 file, a folder of PG19
//     books, or JSON Lines) for perplexity as a function of tokens seen.
//   - longbench: the LongBench JSON Lines format, the official per-subset
//     prompt templates, generation lengths, middle truncation and metrics.
//   - ruler: RULER's synthetic tasks (needles, variable tracking, common and
//     frequent words, QA over a user's file), generated to a token-exact
//     length, with RULER's templates and string-match scoring.
//
// Packages that need a tokenizer declare the small interface they use
// (Encode and Decode); the project's runtime tokenizer satisfies it.
package datasets
