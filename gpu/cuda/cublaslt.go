package cuda

import (
	"errors"
	"fmt"
	"os"
	"unsafe"
)

// cublasLtAPI is cuBLASLt as the package sees it; binding_cgo.go implements
// it and tests fake it. Descriptors, layouts and preferences are C pointers
// the Go side never dereferences. Calls that touch the device make ctx
// current through drv first.
type cublasLtAPI interface {
	create(drv driverAPI, ctx unsafe.Pointer) (unsafe.Pointer, int)
	destroy(drv driverAPI, ctx, h unsafe.Pointer) int
	version() int
	descCreate(computeType, scaleType int) (unsafe.Pointer, int)
	// descSet and prefSet set attribute attr to v, an attribute of size
	// bytes (4 or 8; a 4-byte attribute takes v's low 32 bits).
	descSet(desc unsafe.Pointer, attr int, v uint64, size int) int
	descDestroy(desc unsafe.Pointer) int
	layoutCreate(dtype int, rows, cols uint64, ld int64) (unsafe.Pointer, int)
	layoutDestroy(layout unsafe.Pointer) int
	prefCreate() (unsafe.Pointer, int)
	prefSet(pref unsafe.Pointer, attr int, v uint64, size int) int
	prefDestroy(pref unsafe.Pointer) int
	// heuristic fills out with up to len(out) algorithms, best first, and
	// returns how many it filled.
	heuristic(drv driverAPI, ctx, h, desc, a, b, c, d, pref unsafe.Pointer, out []ltHeuristic) (n, status int)
	// matmul queues d = alpha·op(a)·op(b) + beta·c on the default stream.
	matmul(drv driverAPI, ctx, h, desc unsafe.Pointer, alpha, beta float32,
		a DevicePtr, al unsafe.Pointer, b DevicePtr, bl unsafe.Pointer,
		c DevicePtr, cl unsafe.Pointer, d DevicePtr, dl unsafe.Pointer,
		algo *ltAlgo, workspace DevicePtr, workspaceBytes int) int
	close()
}

// ltAlgo is a cublasLtMatmulAlgo_t: 64 opaque bytes (uint64_t data[8]).
type ltAlgo [8]uint64

// ltHeuristic is what package cuda keeps of one
// cublasLtMatmulHeuristicResult_t.
type ltHeuristic struct {
	algo      ltAlgo
	workspace int     // bytes the algorithm needs
	state     int     // cublasStatus_t; the other fields are valid when 0
	waves     float32 // device utilisation, 1 for one full wave
}

// DataType is a cudaDataType_t (library_types.h): the element type of a
// matrix for cuBLASLt.
type DataType int

// Element types of cuBLASLt matrices.
const (
	R32F  DataType = 0  // CUDA_R_32F: float32
	R16F  DataType = 2  // CUDA_R_16F: IEEE half
	R16BF DataType = 14 // CUDA_R_16BF: bfloat16
)

// String returns the type's name in library_types.h.
func (t DataType) String() string {
	switch t {
	case R32F:
		return "CUDA_R_32F"
	case R16F:
		return "CUDA_R_16F"
	case R16BF:
		return "CUDA_R_16BF"
	}
	return fmt.Sprintf("cudaDataType(%d)", int(t))
}

// cuBLASLt enumeration values, named after their header constants.
const (
	cublasCompute32F = 68 // CUBLAS_COMPUTE_32F (cublas_api.h, cublasComputeType_t): float32 accumulation, no TF32

	// cublasLtMatmulDescAttributes_t (cublasLt.h)
	ltDescTransA      = 3 // CUBLASLT_MATMUL_DESC_TRANSA, int32_t cublasOperation_t
	ltDescTransB      = 4 // CUBLASLT_MATMUL_DESC_TRANSB, int32_t cublasOperation_t
	ltDescEpilogue    = 7 // CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t cublasLtEpilogue_t
	ltDescBiasPointer = 8 // CUBLASLT_MATMUL_DESC_BIAS_POINTER, const void *

	// cublasLtEpilogue_t
	ltEpilogueDefault = 1 // CUBLASLT_EPILOGUE_DEFAULT
	ltEpilogueBias    = 4 // CUBLASLT_EPILOGUE_BIAS: bias [rows of D] added to every column, in D's type

	// cublasLtMatmulPreferenceAttributes_t
	ltPrefMaxWorkspace = 1 // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t
	ltPrefAlignA       = 5 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t (default 256)
	ltPrefAlignB       = 6 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES
	ltPrefAlignC       = 7 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES
	ltPrefAlignD       = 8 // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES

	cublasStatusNotSupported = 15 // CUBLAS_STATUS_NOT_SUPPORTED

	// ltRequested is how many algorithms the heuristic is asked for; the
	// first usable one is kept.
	ltRequested = 4
	// maxLtPlans bounds the plans a BLASLt keeps: past it they are all
	// dropped and made again on demand (prompts of many lengths give
	// prefill products of many row counts).
	maxLtPlans = 1024
	// maxAlign is the largest pointer alignment cuBLASLt asks about.
	maxAlign = 256
)

// BLASLt is a cuBLASLt handle on one device, with a device workspace and
// the plans (descriptors and chosen algorithm) of the products it has run.
// It is not safe for concurrent use.
type BLASLt struct {
	api            cublasLtAPI
	g              *Device
	h              unsafe.Pointer
	workspace      DevicePtr
	workspaceBytes int
	plans          map[ltKey]*ltPlan

	Path    string // the library loaded
	Version int    // cuBLASLt version, e.g. 130100 for 13.1.0
}

// ltKey identifies a plan: everything the heuristic's answer depends on.
type ltKey struct {
	m, n, k           int
	d, x, w           DataType
	bias              bool
	alignD, alignX    int
	alignW, alignBias int
}

// ltPlan is a matmul descriptor, the layouts of W, X and D, and the
// algorithm cuBLASLt chose for them; ok is false when it had none.
type ltPlan struct {
	desc, a, b, d unsafe.Pointer
	algo          ltAlgo
	workspace     int
	ok            bool
}

// OpenCUBLASLt loads libcublasLt (searched like NVRTC) and creates a
// handle on g; products may use workspaceBytes of device memory at
// workspace, which the caller owns and frees after Close. Errors wrap
// ErrNoCUBLASLt when the library is missing.
func OpenCUBLASLt(g *Device, workspace DevicePtr, workspaceBytes int) (*BLASLt, error) {
	api, path, err := openFirst("libcublasLt", ErrNoCUBLASLt, candidates(cublasLtNames, searchDirs(os.Getenv)), loadCUBLASLt)
	if err != nil {
		return nil, err
	}
	l, err := newBLASLt(api, g, path, workspace, workspaceBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// newBLASLt creates the handle through a loaded api; it closes api on
// failure.
func newBLASLt(api cublasLtAPI, g *Device, path string, workspace DevicePtr, workspaceBytes int) (*BLASLt, error) {
	l := &BLASLt{api: api, g: g, workspace: workspace, workspaceBytes: workspaceBytes, plans: map[ltKey]*ltPlan{}, Path: path}
	h, st := api.create(g.drv.api, g.ctx)
	if st != 0 {
		api.close()
		return nil, l.check("cublasLtCreate", st)
	}
	l.h = h
	l.Version = api.version()
	return l, nil
}

// check turns a cuBLASLt status into an error; negative statuses are driver
// failures to make the context current.
func (l *BLASLt) check(op string, st int) error {
	switch {
	case st == 0:
		return nil
	case st < 0:
		return l.g.check(op, -st)
	}
	return &Error{Op: op, Code: st, Name: cublasStatusNames[st]}
}

// Close destroys the plans and the handle and unloads the library. The
// workspace is the caller's to free.
func (l *BLASLt) Close() error {
	if l.api == nil {
		return nil
	}
	errs := []error{l.dropPlans()}
	if l.h != nil {
		errs = append(errs, l.check("cublasLtDestroy", l.api.destroy(l.g.drv.api, l.g.ctx, l.h)))
	}
	l.api.close()
	l.api, l.h = nil, nil
	return errors.Join(errs...)
}

// Plans returns how many of the cached plans have an algorithm and how
// many have none (products cuBLASLt declined), for logs and tests.
func (l *BLASLt) Plans() (withAlgo, without int) {
	for _, p := range l.plans {
		if p.ok {
			withAlgo++
		} else {
			without++
		}
	}
	return withAlgo, without
}

// dropPlans destroys every plan's descriptors.
func (l *BLASLt) dropPlans() error {
	var errs []error
	for k, p := range l.plans {
		errs = append(errs, l.destroyPlan(p))
		delete(l.plans, k)
	}
	return errors.Join(errs...)
}

func (l *BLASLt) destroyPlan(p *ltPlan) error {
	var errs []error
	for _, lay := range []unsafe.Pointer{p.a, p.b, p.d} {
		if lay != nil {
			errs = append(errs, l.check("cublasLtMatrixLayoutDestroy", l.api.layoutDestroy(lay)))
		}
	}
	if p.desc != nil {
		errs = append(errs, l.check("cublasLtMatmulDescDestroy", l.api.descDestroy(p.desc)))
	}
	p.desc, p.a, p.b, p.d = nil, nil, nil, nil
	return errors.Join(errs...)
}

// MatMulOp is one product for MatMulNT: D [M, N] = X [M, K] · Wᵀ (+ Bias
// [N]) for W [N, K], all row-major (the layout of x·wᵀ for a Hugging Face
// weight w).
type MatMulOp struct {
	D, X, W DevicePtr
	// Bias is 0 for none; it has D's type (CUBLASLT_EPILOGUE_BIAS reads it
	// so).
	Bias                DevicePtr
	DType, XType, WType DataType
	M, N, K             int
}

// MatMulNT queues op on the default stream with float32 accumulation and
// scale (CUBLAS_COMPUTE_32F) and the bias fused as an epilogue. Plans are
// cached by shape, types and pointer alignments, so only the first product
// of a kind asks cuBLASLt's heuristic. It returns false (and no error) when
// cuBLASLt has no algorithm for the product (the heuristic found none, or
// the one it found answered CUBLAS_STATUS_NOT_SUPPORTED, before queueing
// anything): the caller computes it another way.
//
// cuBLASLt is column-major, where these row-major buffers are Wᵀ [K, N],
// Xᵀ [K, M] and Dᵀ [N, M]; so it computes Dᵀ = op(W)·Xᵀ with op = transpose,
// and the bias runs along Dᵀ's rows as the epilogue wants.
func (l *BLASLt) MatMulNT(op MatMulOp) (bool, error) {
	if op.M <= 0 || op.N <= 0 || op.K <= 0 {
		return false, fmt.Errorf("cublasLtMatmul: %d×%d×%d product", op.M, op.N, op.K)
	}
	key := ltKey{
		m: op.M, n: op.N, k: op.K, d: op.DType, x: op.XType, w: op.WType, bias: op.Bias != 0,
		alignD: alignment(op.D), alignX: alignment(op.X), alignW: alignment(op.W), alignBias: alignment(op.Bias),
	}
	p := l.plans[key]
	if p == nil {
		if len(l.plans) >= maxLtPlans {
			if err := l.dropPlans(); err != nil {
				return false, err
			}
		}
		var err error
		if p, err = l.plan(key, op.Bias); err != nil {
			return false, err
		}
		l.plans[key] = p
	}
	if !p.ok {
		return false, nil
	}
	if op.Bias != 0 {
		if st := l.api.descSet(p.desc, ltDescBiasPointer, uint64(op.Bias), 8); st != 0 {
			return false, l.check("cublasLtMatmulDescSetAttribute(BIAS_POINTER)", st)
		}
	}
	st := l.api.matmul(l.g.drv.api, l.g.ctx, l.h, p.desc, 1, 0,
		op.W, p.a, op.X, p.b, op.D, p.d, op.D, p.d, &p.algo, l.workspace, p.workspace)
	if st == cublasStatusNotSupported {
		// The heuristic's algorithm refused the product after all: remember
		// that there is none.
		p.ok = false
		return false, l.destroyPlan(p)
	}
	if st != 0 {
		return false, fmt.Errorf("%d×%d×%d %v·%vᵀ→%v: %w", op.M, op.N, op.K, op.XType, op.WType, op.DType, l.check("cublasLtMatmul", st))
	}
	return true, nil
}

// plan makes the descriptors of key's product and asks the heuristic for
// an algorithm. bias is a bias pointer of the key's alignment (the
// heuristic reads its alignment from the descriptor).
func (l *BLASLt) plan(key ltKey, bias DevicePtr) (_ *ltPlan, err error) {
	p := &ltPlan{}
	defer func() {
		if err != nil || !p.ok {
			err = errors.Join(err, l.destroyPlan(p))
		}
	}()
	var st int
	if p.desc, st = l.api.descCreate(cublasCompute32F, int(R32F)); st != 0 {
		p.desc = nil
		return nil, l.check("cublasLtMatmulDescCreate", st)
	}
	epilogue := uint64(ltEpilogueDefault)
	if key.bias {
		epilogue = ltEpilogueBias
	}
	for _, a := range []struct {
		name       string
		attr, size int
		v          uint64
	}{
		{"TRANSA", ltDescTransA, 4, cublasOpT},
		{"TRANSB", ltDescTransB, 4, cublasOpN},
		{"EPILOGUE", ltDescEpilogue, 4, epilogue},
		{"BIAS_POINTER", ltDescBiasPointer, 8, uint64(bias)},
	} {
		if a.attr == ltDescBiasPointer && !key.bias {
			continue
		}
		if st := l.api.descSet(p.desc, a.attr, a.v, a.size); st != 0 {
			return nil, l.check("cublasLtMatmulDescSetAttribute("+a.name+")", st)
		}
	}
	for _, m := range []struct {
		dst        *unsafe.Pointer
		t          DataType
		rows, cols int
	}{
		{&p.a, key.w, key.k, key.n}, // W row-major [N, K] = column-major [K, N]
		{&p.b, key.x, key.k, key.m}, // X row-major [M, K] = column-major [K, M]
		{&p.d, key.d, key.n, key.m}, // D row-major [M, N] = column-major [N, M]
	} {
		lay, st := l.api.layoutCreate(int(m.t), uint64(m.rows), uint64(m.cols), int64(m.rows))
		if st != 0 {
			return nil, l.check("cublasLtMatrixLayoutCreate", st)
		}
		*m.dst = lay
	}
	pref, st := l.api.prefCreate()
	if st != 0 {
		return nil, l.check("cublasLtMatmulPreferenceCreate", st)
	}
	defer func() {
		err = errors.Join(err, l.check("cublasLtMatmulPreferenceDestroy", l.api.prefDestroy(pref)))
	}()
	for _, a := range []struct {
		name       string
		attr, size int
		v          uint64
	}{
		{"MAX_WORKSPACE_BYTES", ltPrefMaxWorkspace, 8, uint64(l.workspaceBytes)},
		{"MIN_ALIGNMENT_A_BYTES", ltPrefAlignA, 4, uint64(key.alignW)},
		{"MIN_ALIGNMENT_B_BYTES", ltPrefAlignB, 4, uint64(key.alignX)},
		{"MIN_ALIGNMENT_C_BYTES", ltPrefAlignC, 4, uint64(key.alignD)},
		{"MIN_ALIGNMENT_D_BYTES", ltPrefAlignD, 4, uint64(key.alignD)},
	} {
		if st := l.api.prefSet(pref, a.attr, a.v, a.size); st != 0 {
			return nil, l.check("cublasLtMatmulPreferenceSetAttribute("+a.name+")", st)
		}
	}
	var found [ltRequested]ltHeuristic
	n, st := l.api.heuristic(l.g.drv.api, l.g.ctx, l.h, p.desc, p.a, p.b, p.d, p.d, pref, found[:])
	switch {
	case st == cublasStatusNotSupported:
		return p, nil // no algorithm: p.ok stays false
	case st != 0:
		return nil, l.check("cublasLtMatmulAlgoGetHeuristic", st)
	}
	for _, h := range found[:min(n, len(found))] {
		if h.state == 0 && h.workspace <= l.workspaceBytes {
			p.algo, p.workspace, p.ok = h.algo, h.workspace, true
			break
		}
	}
	return p, nil
}

// alignment is the largest power of two dividing p, at most maxAlign (and
// maxAlign for 0, no pointer).
func alignment(p DevicePtr) int {
	if p == 0 {
		return maxAlign
	}
	return int(min(uint64(p)&-uint64(p), maxAlign))
}
