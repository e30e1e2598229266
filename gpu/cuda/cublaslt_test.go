package cuda

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// fakeLt records what BLASLt asks of cuBLASLt. Handles are distinct
// one-byte allocations; statuses can be set per call.
type fakeLt struct {
	alive map[unsafe.Pointer]string // live objects by kind

	createSt, descCreateSt, layoutSt, prefSt, heurSt, matmulSt int
	descSetSt                                                  int
	results                                                    []ltHeuristic // what the heuristic returns

	descAttrs  map[int]uint64 // last value per attribute
	prefAttrs  map[int]uint64
	layouts    [][4]int64 // type, rows, cols, ld
	heuristics int
	matmuls    []fakeMatmul
	closed     bool
}

type fakeMatmul struct {
	alpha, beta      float32
	a, b, c, d       DevicePtr
	algo             ltAlgo
	ws               DevicePtr
	wsBytes          int
	sameCD           bool // C and D share their layout
	aLay, bLay, dLay unsafe.Pointer
}

func newFakeLt() *fakeLt {
	return &fakeLt{alive: map[unsafe.Pointer]string{}, descAttrs: map[int]uint64{}, prefAttrs: map[int]uint64{},
		results: []ltHeuristic{{algo: ltAlgo{1, 2, 3, 4, 5, 6, 7, 8}, workspace: 1024}}}
}

func (f *fakeLt) obj(kind string) unsafe.Pointer {
	p := unsafe.Pointer(new(byte))
	f.alive[p] = kind
	return p
}

func (f *fakeLt) free(p unsafe.Pointer, kind string) int {
	if f.alive[p] != kind {
		panic("destroying a " + kind + " that is not live")
	}
	delete(f.alive, p)
	return 0
}

func (f *fakeLt) count(kind string) int {
	n := 0
	for _, k := range f.alive {
		if k == kind {
			n++
		}
	}
	return n
}

func (f *fakeLt) create(driverAPI, unsafe.Pointer) (unsafe.Pointer, int) {
	if f.createSt != 0 {
		return nil, f.createSt
	}
	return f.obj("handle"), 0
}
func (f *fakeLt) destroy(_ driverAPI, _, h unsafe.Pointer) int { return f.free(h, "handle") }
func (f *fakeLt) version() int                                 { return 130100 }
func (f *fakeLt) descCreate(computeType, scaleType int) (unsafe.Pointer, int) {
	if f.descCreateSt != 0 {
		return nil, f.descCreateSt
	}
	if computeType != cublasCompute32F || scaleType != int(R32F) {
		panic("descriptor not float32 compute and scale")
	}
	return f.obj("desc"), 0
}
func (f *fakeLt) descSet(desc unsafe.Pointer, attr int, v uint64, size int) int {
	if f.alive[desc] != "desc" {
		panic("descSet on a dead descriptor")
	}
	if (attr == ltDescBiasPointer) != (size == 8) {
		panic("attribute of the wrong size")
	}
	if f.descSetSt != 0 {
		return f.descSetSt
	}
	f.descAttrs[attr] = v
	return 0
}
func (f *fakeLt) descDestroy(desc unsafe.Pointer) int { return f.free(desc, "desc") }
func (f *fakeLt) layoutCreate(dtype int, rows, cols uint64, ld int64) (unsafe.Pointer, int) {
	if f.layoutSt != 0 {
		return nil, f.layoutSt
	}
	f.layouts = append(f.layouts, [4]int64{int64(dtype), int64(rows), int64(cols), ld})
	return f.obj("layout"), 0
}
func (f *fakeLt) layoutDestroy(l unsafe.Pointer) int { return f.free(l, "layout") }
func (f *fakeLt) prefCreate() (unsafe.Pointer, int) {
	if f.prefSt != 0 {
		return nil, f.prefSt
	}
	return f.obj("pref"), 0
}
func (f *fakeLt) prefSet(pref unsafe.Pointer, attr int, v uint64, size int) int {
	if (attr == ltPrefMaxWorkspace) != (size == 8) {
		panic("preference of the wrong size")
	}
	f.prefAttrs[attr] = v
	return 0
}
func (f *fakeLt) prefDestroy(p unsafe.Pointer) int { return f.free(p, "pref") }
func (f *fakeLt) heuristic(_ driverAPI, _, _, _, _, _, c, d, _ unsafe.Pointer, out []ltHeuristic) (int, int) {
	f.heuristics++
	if c != d {
		panic("C and D layouts differ")
	}
	if f.heurSt != 0 {
		return 0, f.heurSt
	}
	return copy(out, f.results), 0
}
func (f *fakeLt) matmul(_ driverAPI, _, _, _ unsafe.Pointer, alpha, beta float32,
	a DevicePtr, al unsafe.Pointer, b DevicePtr, bl unsafe.Pointer,
	c DevicePtr, cl unsafe.Pointer, d DevicePtr, dl unsafe.Pointer,
	algo *ltAlgo, ws DevicePtr, wsBytes int) int {
	f.matmuls = append(f.matmuls, fakeMatmul{alpha, beta, a, b, c, d, *algo, ws, wsBytes, cl == dl, al, bl, dl})
	return f.matmulSt
}
func (f *fakeLt) close() { f.closed = true }

func fakeDevice() *Device {
	return &Device{drv: &Driver{api: &fakeDriver{}}}
}

func openFakeLt(t *testing.T, f *fakeLt) *BLASLt {
	t.Helper()
	l, err := newBLASLt(f, fakeDevice(), "libcublasLt.so.13", 0x7f0000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestBLASLtPlan(t *testing.T) {
	f := newFakeLt()
	l := openFakeLt(t, f)
	if l.Version != 130100 {
		t.Errorf("version %d", l.Version)
	}
	op := MatMulOp{D: 0x10000, X: 0x20000, W: 0x30000, Bias: 0x40000, DType: R32F, XType: R16BF, WType: R16BF, M: 3, N: 5, K: 7}
	for i := 0; i < 2; i++ {
		ok, err := l.MatMulNT(op)
		if !ok || err != nil {
			t.Fatalf("call %d: %v, %v", i, ok, err)
		}
	}
	if f.heuristics != 1 {
		t.Errorf("heuristic asked %d times for one shape", f.heuristics)
	}
	// Column-major view: W as [K, N], X as [K, M], D as [N, M].
	want := [][4]int64{{int64(R16BF), 7, 5, 7}, {int64(R16BF), 7, 3, 7}, {int64(R32F), 5, 3, 5}}
	if !reflect.DeepEqual(f.layouts, want) {
		t.Errorf("layouts %v, want %v", f.layouts, want)
	}
	if f.descAttrs[ltDescTransA] != cublasOpT || f.descAttrs[ltDescTransB] != cublasOpN ||
		f.descAttrs[ltDescEpilogue] != ltEpilogueBias || f.descAttrs[ltDescBiasPointer] != 0x40000 {
		t.Errorf("descriptor attributes %v", f.descAttrs)
	}
	if f.prefAttrs[ltPrefMaxWorkspace] != 1<<20 || f.prefAttrs[ltPrefAlignA] != 256 || f.prefAttrs[ltPrefAlignD] != 256 {
		t.Errorf("preferences %v", f.prefAttrs)
	}
	m := f.matmuls[1]
	if m.alpha != 1 || m.beta != 0 || m.a != op.W || m.b != op.X || m.c != op.D || m.d != op.D || !m.sameCD ||
		m.algo != (ltAlgo{1, 2, 3, 4, 5, 6, 7, 8}) || m.ws != 0x7f0000 || m.wsBytes != 1024 {
		t.Errorf("matmul %+v", m)
	}
	if f.count("pref") != 0 {
		t.Error("preference not destroyed after the heuristic")
	}

	// Another bias of the same alignment reuses the plan with its pointer.
	op.Bias = 0x50000
	if ok, err := l.MatMulNT(op); !ok || err != nil || f.heuristics != 1 || f.descAttrs[ltDescBiasPointer] != 0x50000 {
		t.Errorf("new bias: %v, %v, %d heuristics, bias %#x", ok, err, f.heuristics, f.descAttrs[ltDescBiasPointer])
	}
	// A worse-aligned X, no bias or another row count is another plan.
	for i, o := range []MatMulOp{
		{D: 0x10000, X: 0x20002, W: 0x30000, DType: R32F, XType: R16BF, WType: R16BF, M: 3, N: 5, K: 7},
		{D: 0x10000, X: 0x20000, W: 0x30000, DType: R32F, XType: R16BF, WType: R16BF, M: 3, N: 5, K: 7},
		{D: 0x10000, X: 0x20000, W: 0x30000, DType: R16BF, XType: R16BF, WType: R16BF, M: 1, N: 5, K: 7},
	} {
		if ok, err := l.MatMulNT(o); !ok || err != nil || f.heuristics != 2+i {
			t.Errorf("op %d: %v, %v, %d heuristics", i, ok, err, f.heuristics)
		}
	}
	if ok, none := l.Plans(); ok != 4 || none != 0 {
		t.Errorf("Plans() = %d, %d, want 4, 0", ok, none)
	}
	if f.prefAttrs[ltPrefAlignB] != 256 || f.descAttrs[ltDescEpilogue] != ltEpilogueDefault {
		t.Errorf("last plan: preferences %v, descriptor %v", f.prefAttrs, f.descAttrs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.alive) != 0 || !f.closed {
		t.Errorf("after Close: live %v, library closed %v", f.alive, f.closed)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBLASLtNoAlgorithm(t *testing.T) {
	for _, c := range []struct {
		name    string
		st      int
		results []ltHeuristic
	}{
		{"not supported", cublasStatusNotSupported, nil},
		{"no results", 0, nil},
		{"only failed results", 0, []ltHeuristic{{state: 15}}},
		{"too much workspace", 0, []ltHeuristic{{workspace: 2 << 20}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeLt()
			f.heurSt, f.results = c.st, c.results
			l := openFakeLt(t, f)
			op := MatMulOp{D: 0x10000, X: 0x20000, W: 0x30000, DType: R16BF, XType: R16BF, WType: R16BF, M: 2, N: 2, K: 2}
			for i := 0; i < 2; i++ {
				if ok, err := l.MatMulNT(op); ok || err != nil {
					t.Fatalf("call %d: %v, %v, want false and no error", i, ok, err)
				}
			}
			if ok, none := l.Plans(); ok != 0 || none != 1 {
				t.Errorf("Plans() = %d, %d, want 0, 1", ok, none)
			}
			if f.heuristics != 1 || len(f.matmuls) != 0 {
				t.Errorf("%d heuristics, %d matmuls: the answer is not cached", f.heuristics, len(f.matmuls))
			}
			if f.count("desc") != 0 || f.count("layout") != 0 {
				t.Errorf("descriptors of a plan without algorithm kept: %v", f.alive)
			}
			l.Close()
		})
	}
}

// TestBLASLtRefused: an algorithm that refuses the product at run time is
// remembered as none.
func TestBLASLtRefused(t *testing.T) {
	f := newFakeLt()
	f.matmulSt = cublasStatusNotSupported
	l := openFakeLt(t, f)
	op := MatMulOp{D: 0x10000, X: 0x20000, W: 0x30000, DType: R16BF, XType: R16BF, WType: R16BF, M: 2, N: 2, K: 2}
	for i := 0; i < 2; i++ {
		if ok, err := l.MatMulNT(op); ok || err != nil {
			t.Fatalf("call %d: %v, %v, want false and no error", i, ok, err)
		}
	}
	if f.heuristics != 1 || len(f.matmuls) != 1 || f.count("desc") != 0 || f.count("layout") != 0 {
		t.Errorf("%d heuristics, %d matmuls, live %v", f.heuristics, len(f.matmuls), f.alive)
	}
	l.Close()
}

func TestBLASLtErrors(t *testing.T) {
	op := MatMulOp{D: 0x10000, X: 0x20000, W: 0x30000, Bias: 0x40000, DType: R16BF, XType: R16BF, WType: R16BF, M: 2, N: 2, K: 2}
	for _, c := range []struct {
		name, want string
		set        func(f *fakeLt)
	}{
		{"desc", "cublasLtMatmulDescCreate: CUBLAS_STATUS_ALLOC_FAILED", func(f *fakeLt) { f.descCreateSt = 3 }},
		{"attribute", "cublasLtMatmulDescSetAttribute(TRANSA): CUBLAS_STATUS_INVALID_VALUE", func(f *fakeLt) { f.descSetSt = 7 }},
		{"layout", "cublasLtMatrixLayoutCreate: CUBLAS_STATUS_ALLOC_FAILED", func(f *fakeLt) { f.layoutSt = 3 }},
		{"preference", "cublasLtMatmulPreferenceCreate: CUBLAS_STATUS_ALLOC_FAILED", func(f *fakeLt) { f.prefSt = 3 }},
		{"heuristic", "cublasLtMatmulAlgoGetHeuristic: CUBLAS_STATUS_INVALID_VALUE", func(f *fakeLt) { f.heurSt = 7 }},
		{"matmul", "cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED", func(f *fakeLt) { f.matmulSt = 13 }},
		{"context", "cublasLtMatmul: CUDA_ERROR_X (x)", func(f *fakeLt) { f.matmulSt = -201 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeLt()
			c.set(f)
			l := openFakeLt(t, f)
			ok, err := l.MatMulNT(op)
			var e *Error
			if ok || !errors.As(err, &e) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, %v: want an error with %q", ok, err, c.want)
			}
			if c.name != "matmul" && c.name != "context" && (f.count("desc") != 0 || f.count("layout") != 0 || f.count("pref") != 0) {
				t.Errorf("failed plan left %v", f.alive)
			}
			l.Close()
		})
	}
	f := newFakeLt()
	f.createSt = 1
	if _, err := newBLASLt(f, fakeDevice(), "lib", 0, 0); err == nil || !strings.Contains(err.Error(), "cublasLtCreate: CUBLAS_STATUS_NOT_INITIALIZED") || !f.closed {
		t.Errorf("create failure: %v, library closed %v", err, f.closed)
	}
	l := openFakeLt(t, newFakeLt())
	if _, err := l.MatMulNT(MatMulOp{M: 0, N: 1, K: 1}); err == nil {
		t.Error("empty product accepted")
	}
}

func TestBLASLtPlanLimit(t *testing.T) {
	f := newFakeLt()
	l := openFakeLt(t, f)
	for m := 1; m <= maxLtPlans+1; m++ {
		if ok, err := l.MatMulNT(MatMulOp{D: 0x10000, X: 0x20000, W: 0x30000, DType: R16BF, XType: R16BF, WType: R16BF, M: m, N: 8, K: 8}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if len(l.plans) != 1 || f.count("desc") != 1 || f.count("layout") != 3 {
		t.Errorf("%d plans, %d descriptors, %d layouts after the limit", len(l.plans), f.count("desc"), f.count("layout"))
	}
	l.Close()
}

func TestAlignment(t *testing.T) {
	for p, want := range map[DevicePtr]int{0: 256, 0x7f0000000000: 256, 0x1100: 256, 0x1080: 128, 0x1002: 2, 0x1001: 1} {
		if got := alignment(p); got != want {
			t.Errorf("alignment(%#x) = %d, want %d", p, got, want)
		}
	}
}

// TestLoadCUBLASLt loads the real library where there is one and checks
// that every entry point resolves and the version reads; it needs no GPU.
func TestLoadCUBLASLt(t *testing.T) {
	api, path, err := openFirst("libcublasLt", ErrNoCUBLASLt, candidates(cublasLtNames, searchDirs(os.Getenv)), loadCUBLASLt)
	if err != nil {
		if !errors.Is(err, ErrNoCUBLASLt) {
			t.Fatalf("error %v does not wrap ErrNoCUBLASLt", err)
		}
		if os.Getenv("KVCASCADE_REQUIRE_GPU") != "" {
			t.Fatal(err)
		}
		t.Skipf("no cuBLASLt: %v", err)
	}
	defer api.close()
	v := api.version()
	if v < 110000 {
		t.Errorf("%s: version %d", path, v)
	}
	t.Logf("%s: cuBLASLt %d", path, v)
}
