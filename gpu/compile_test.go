package gpu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kvcascade/gpu/cuda"
	"kvcascade/runtime/safetensors"
)

// TestKernelsCompile compiles every kernel source with NVRTC for Ampere
// and Hopper, each in every variant the backend compiles (attention at the
// head dimensions the models use, for f32 and bf16 storage), and checks
// that each kernel the backend looks up by name is in the code. It needs
// NVRTC, not a GPU, so it also runs on machines with a toolkit and no
// device.
func TestKernelsCompile(t *testing.T) {
	nv, err := cuda.OpenNVRTC()
	if errors.Is(err, cuda.ErrNoNVRTC) {
		t.Skipf("no NVRTC: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nv.Close()
	t.Logf("NVRTC %s at %s", nv.Version(), nv.Path)
	type compilation struct {
		p     program
		names []string // kernels the backend looks up in it
	}
	opsNames, _ := (&opsKernels{}).table()
	progs := []compilation{{opsProgram(), opsNames}, {randomProgram(), randomKernels[:]}, {cascadeProgram(), cascadeKernelNames[:]}, {tokensProgram(), tokenKernelNames[:]}, {patternProgram(), patternKernelNames[:]}, {sampleProgram(), sampleKernelNames[:]}}
	// Arrays of size −1 fail to compile unless cascade.go's walk geometry
	// matches the #defines.
	cp := cascadeProgram()
	cp.src += fmt.Sprintf("\ntypedef char walk_geometry[WALK_THREADS == %d && WALK_HEAD == %d && WALK_SHARED(7, 5) == %d && WALK_PAR_SHARED(7, 5, 33) == %d ? 1 : -1];\n",
		cascadeWalkThreads, cascadeWalkHead, cascadeWalkStaged(7, 5), cascadeWalkParallel(7, 5, 33))
	progs = append(progs, compilation{cp, cascadeKernelNames[:]})
	for _, hd := range decodeHeadDims {
		// Arrays of size −1 fail to compile unless decode.go's geometry
		// matches the #defines.
		for _, heads := range []int{1, decodeHeads, 8} {
			for _, tune := range []decodeTuning{{}, {minBlocks: 1, stages: 3}} {
				p := decodeProgram(hd, heads, tune)
				p.src += fmt.Sprintf("\ntypedef char decode_geometry[DEC_THREADS == %d && DEC_ROWS == %d && COMBINE_THREADS == %d && MAX_SPLIT == %d && DEC_MINBLOCKS == %d && DEC_STAGES == %d && DEC_SHARED == %d && MASS_THREADS == %d && MASS_KEYS == %d ? 1 : -1];\n",
					32*decodeWarps(heads), decodeRows, combineThreads, decodeMaxSplit, tune.blocksPerSM(heads), tune.withDefaults().stages, tune.sharedBytes(hd, heads), massThreads, massKeys)
				progs = append(progs, compilation{p, decodeKernelNames[:]})
			}
		}
	}
	for _, hd := range []int{16, 32, 64, 96, 128, 256} {
		for st := range numStorage {
			progs = append(progs, compilation{attentionProgram(hd, st), attentionKernels})
		}
	}
	dump := os.Getenv("KVCASCADE_KERNEL_DUMP")
	for _, cc := range [][2]int{{8, 0}, {9, 0}} {
		c := cuda.NewCompiler(nv, cc[0], cc[1], "")
		arch := fmt.Sprintf("sm_%d%d", cc[0], cc[1])
		t.Run(arch, func(t *testing.T) {
			for _, pr := range progs {
				img, err := c.Compile(pr.p.name, pr.p.src, pr.p.opts...)
				if err != nil {
					t.Fatalf("%s: %v", pr.p.name, err)
				}
				dumpImage(t, dump, pr.p.name, arch, img)
				checkKernels(t, pr.p.name, img, pr.names)
				t.Logf("%s: %d bytes (PTX %v), %d kernels", pr.p.name, len(img.Code), img.PTX, len(pr.names))
			}
			for _, hd := range flashHeadDims {
				// Arrays of size −1 fail to compile unless flash.go's
				// geometry and shared memory sizes match the #defines.
				p := flashProgram(hd)
				src := p.src + fmt.Sprintf("\ntypedef char flash_fwd_shared[FWD_SHARED == %d ? 1 : -1];\n"+
					"typedef char flash_mass_shared[MASS_SHARED == %d ? 1 : -1];\n"+
					"typedef char flash_geometry[BQ == %d && BK == %d && BKM == %d && KTILE == %d && BQM == %d && GR == %d && THREADS == %d ? 1 : -1];\n",
					flashFwdShared(hd), flashMassShared(hd), flashQueryRows, flashKeyTile, flashMassKeys, flashMassKeys,
					flashMassTile, flashGather, flashThreads)
				img, err := c.Compile(p.name, src, p.opts...)
				if err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
				dumpImage(t, dump, p.name, arch, img)
				checkKernels(t, p.name, img, flashKernelNames[:flashFwd90Kernel])
				t.Logf("flash.cu HEAD_DIM=%d: %d bytes", hd, len(img.Code))
				if cc[0] != 9 {
					continue
				}
				// flash_fwd90, for sm_90a: the default and the options
				// the benchmarks try.
				for _, tune := range []flashW90Tuning{{}, {pingPong: true, massPoly: true}} {
					p := flashW90Program(hd, tune)
					src := p.src + fmt.Sprintf("\ntypedef char flash_w90_geometry[W_SHARED == %d && W_MSHARED == %d && W_THREADS == %d && W_BK == %d && W_STAGES == %d && W_BQ == %d && W_MK == %d && W_MQ == %d ? 1 : -1];\n",
						flashW90Shared(hd, tune.nstages()), flashW90MassShared(hd, tune.nstages()), flashW90Threads, flashW90KeyTile, tune.nstages(), flashQueryRows, flashMassKeys, flashW90QueryTile)
					// ptxas -v: the registers and spills of each kernel, in the log
					img, err := c.CompileSpecific(p.name, src, append(p.opts, "--ptxas-options=-v")...)
					if err != nil {
						t.Fatalf("%s: %v", p.name, err)
					}
					dumpImage(t, dump, p.name, "sm_90a", img)
					checkKernels(t, p.name, img, flashKernelNames[:])
					t.Logf("flash.cu HEAD_DIM=%d for sm_90a %v: %d bytes", hd, p.opts, len(img.Code))
					if img.Log != "" {
						t.Logf("flash.cu HEAD_DIM=%d for sm_90a %v: %s", hd, p.opts, img.Log)
					}
					// ptxas serialises every warpgroup MMA of a kernel (C7510
					// to C7520: "wgmma.mma_async instructions are serialized")
					// when it cannot prove the pipeline safe; the kernels then
					// lose most of their speed, so that is a failure here.
					if strings.Contains(img.Log, "wgmma.mma_async instructions are serialized") {
						t.Errorf("flash.cu HEAD_DIM=%d for sm_90a %v: ptxas serialises the warpgroup MMAs", hd, p.opts)
					}
				}
			}
		})
	}
}

// dumpImage writes img, program name's compilation for arch, and
// ptxas's log where there is one, into folder dir (nothing when dir is
// empty), so that the kernels can be read without a GPU (cuobjdump -sass,
// tools/sassloops). The files are named after the program and its
// options, e.g. "decode.cu_-DHEAD_DIM=128_-DDEC_HEADS=4.sm_90.cubin".
func dumpImage(t *testing.T, dir, name, arch string, img *cuda.Image) {
	t.Helper()
	if dir == "" {
		return
	}
	base := strings.Map(func(r rune) rune {
		switch {
		case r == ' ':
			return '_'
		case r == '(' || r == ')' || r == '/':
			return -1
		}
		return r
	}, name) + "." + arch
	ext := ".cubin"
	if img.PTX {
		ext = ".ptx"
	}
	if err := os.WriteFile(filepath.Join(dir, base+ext), img.Code, 0o644); err != nil {
		t.Fatal(err)
	}
	if img.Log != "" {
		if err := os.WriteFile(filepath.Join(dir, base+".log"), []byte(img.Log), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKernels fails t for each of names that is not a kernel of img,
// the compilation of program name. extern "C" names appear unmangled: in
// the cubin's string table, or on the PTX's .entry lines.
func checkKernels(t *testing.T, name string, img *cuda.Image, names []string) {
	t.Helper()
	for _, n := range names {
		if !bytes.Contains(img.Code, []byte(n+"\x00")) && !bytes.Contains(img.Code, []byte(".entry "+n+"(")) {
			t.Errorf("%s: no kernel %s", name, n)
		}
	}
}

// TestBF16Conversion checks the host's rounding to bfloat16 against
// runtime/safetensors' and the exact widening back.
func TestBF16Conversion(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{0, 0}, {1, 0x3f80}, {-2, 0xc000},
		{1 + 1.0/256, 0x3f80},             // a tie: to even (down)
		{1 + 3.0/256, 0x3f82},             // a tie: to even (up)
		{1 + 1.0/256 + 1.0/65536, 0x3f81}, // above the tie
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // overflows to +∞
		{-math.SmallestNonzeroFloat32, 0x8000},
	} {
		if got := toBF16(c.in); got != c.want {
			t.Errorf("toBF16(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0x7f800001, 0xffffffff, 0x7f810000} {
		if h := toBF16(math.Float32frombits(nan)); h&0x7fff <= 0x7f80 || h>>15 != uint16(nan>>31) {
			t.Errorf("toBF16(%#08x) = %#04x, not a NaN of the same sign", nan, h)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float32, 10000)
	for i := range vals {
		vals[i] = math.Float32frombits(rng.Uint32())
		if vals[i] != vals[i] {
			vals[i] = float32(rng.NormFloat64())
		}
	}
	ref := safetensors.BF16Bytes(vals)
	for i, v := range vals {
		want := binary.LittleEndian.Uint16(ref[2*i:])
		if got := toBF16(v); got != want {
			t.Fatalf("toBF16(%g) = %#04x, safetensors gives %#04x", v, got, want)
		}
		if w := fromBF16(want); math.Float32bits(w) != uint32(want)<<16 {
			t.Fatalf("fromBF16(%#04x) = %g", want, w)
		}
	}
}
