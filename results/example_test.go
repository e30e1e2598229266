package results_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"kvcascade/results"
)

// A worker's loop: claim a point, run it, finish it, until none is left.
func Example() {
	dir, err := os.MkdirTemp("", "results")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := results.Open(filepath.Join(dir, "sweep.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	sweep, err := db.EnsureSweep("demo", "[grid]\nlength = [512, 1024]\n")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.AddPoints(sweep, []results.PointSpec{
		{Hash: "a1", Experiment: "passkey", Model: "tiny", Policy: "cascade", Params: map[string]any{"length": 512}},
		{Hash: "b2", Experiment: "passkey", Model: "tiny", Policy: "cascade", Params: map[string]any{"length": 1024}},
	}); err != nil {
		log.Fatal(err)
	}
	// Take over the points of workers that died (no heartbeat for 10 minutes).
	if _, err := db.ResetStale(sweep, 10*time.Minute); err != nil {
		log.Fatal(err)
	}
	for {
		p, err := db.Claim(sweep, "example:gpu0")
		if err != nil {
			log.Fatal(err)
		}
		if p == nil {
			break
		}
		// Run the point here, calling db.Heartbeat(p) every few seconds.
		o := results.Outcome{
			Metrics:    []results.Metric{{Name: "accuracy", Value: 1, Unit: "fraction"}},
			Provenance: results.CurrentProvenance("", ""),
		}
		if err := db.Finish(p, o); err != nil {
			log.Fatal(err)
		}
	}
	c, err := db.Status(sweep)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d of %d done\n", c.Done, c.Total())
	if err := db.Export(os.Stdout, "csv", "demo"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 2 of 2 done
	// sweep,experiment,model,policy,length,metric,value,unit,status,hash
	// demo,passkey,tiny,cascade,512,accuracy,1,fraction,done,a1
	// demo,passkey,tiny,cascade,1024,accuracy,1,fraction,done,b2
}
