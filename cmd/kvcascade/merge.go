package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func runMerge(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "", "the main results database (created if missing)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: kvcascade merge --db MAIN.db SHARD.db|FOLDER|'GLOB'...\n\n"+
			"Folds results databases written by shards of a sweep (the tasks of a Slurm job\n"+
			"array: kvcascade run --slurm) into the main database, each in one transaction,\n"+
			"and prints how many points each added. A folder stands for the *.db files in it.\n"+
			"Finished points are copied; a point the main database has finished already is\n"+
			"kept unless it failed there and is done in the shard, so merging again adds\n"+
			"nothing and merging while the tasks still run is safe. Then prints the status.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, reorder(args)); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	if *db == "" {
		return fmt.Errorf("--db is required")
	}
	store, err := createDB(*db) // merge writes: the main database may be new
	if err != nil {
		return err
	}
	defer store.Close()
	var srcs []string
	for _, arg := range fs.Args() {
		paths, err := mergeSources(arg, *db)
		if err != nil {
			return err
		}
		srcs = append(srcs, paths...)
	}
	var errs []error
	total := 0
	for _, src := range srcs {
		n, err := store.Merge(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total += n
		fmt.Fprintf(stdout, "%s: %d points added\n", src, n)
	}
	fmt.Fprintf(stdout, "merged %d of %d databases into %s: %d points added\n", len(srcs)-len(errs), len(srcs), *db, total)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return runStatus([]string{"--db", *db}, stdout, stderr)
}

// mergeSources expands one argument of merge: a folder into the *.db files
// in it, a glob pattern into its matches, a file into itself. Expansions
// leave out the main database.
func mergeSources(arg, main string) ([]string, error) {
	var paths []string
	fi, err := os.Stat(arg)
	switch {
	case err == nil && fi.IsDir():
		if paths, err = filepath.Glob(filepath.Join(arg, "*.db")); err != nil {
			return nil, err
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: no *.db files in the folder", arg)
		}
	case err == nil:
		return []string{arg}, nil
	case strings.ContainsAny(arg, "*?["):
		if paths, err = filepath.Glob(arg); err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: no file matches", arg)
		}
	default:
		return nil, err
	}
	mainInfo, err := os.Stat(main)
	if err != nil {
		return paths, nil
	}
	kept := paths[:0]
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, mainInfo) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}
