//go:build !purego

#include "textflag.h"

// func hasAVX2FMA() bool
TEXT ·hasAVX2FMA(SB), NOSPLIT, $0-1
	// CPUID leaf 1, ECX: FMA (bit 12), OSXSAVE (27), AVX (28).
	MOVL $1, AX
	XORL CX, CX
	CPUID
	ANDL $0x18001000, CX
	CMPL CX, $0x18001000
	JNE  no
	// XCR0: the OS saves the XMM (bit 1) and YMM (bit 2) state.
	XORL CX, CX
	XGETBV
	ANDL $6, AX
	CMPL AX, $6
	JNE  no
	// CPUID leaf 7, EBX: AVX2 (bit 5).
	MOVL $7, AX
	XORL CX, CX
	CPUID
	ANDL $0x20, BX
	JZ   no
	MOVB $1, ret+0(FP)
	RET

no:
	MOVB $0, ret+0(FP)
	RET

// REDUCE4 sums each of four accumulators into one float and stores the four
// sums at dst: dst[i] = Σ lanes of ai.
#define REDUCE4(a0, a1, a2, a3, x0, dst) \
	VHADDPS     a1, a0, a0 \
	VHADDPS     a3, a2, a2 \
	VHADDPS     a2, a0, a0 \
	VEXTRACTF128 $1, a0, X15 \
	VADDPS      X15, x0, x0 \
	VMOVUPS     x0, dst

// func dot3x4(k8 int, a0, a1, a2, b0, b1, b2, b3 *float32, out *[12]float32)
//
// out[4r+c] = Σ_{t<8·k8} ar[t]·bc[t].
TEXT ·dot3x4(SB), NOSPLIT, $0-72
	MOVQ k8+0(FP), CX
	MOVQ a0+8(FP), R8
	MOVQ a1+16(FP), R9
	MOVQ a2+24(FP), R10
	MOVQ b0+32(FP), R11
	MOVQ b1+40(FP), R12
	MOVQ b2+48(FP), R13
	MOVQ b3+56(FP), BX
	MOVQ out+64(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	XORQ   AX, AX
	TESTQ  CX, CX
	JZ     dot3x4done

dot3x4loop:
	VMOVUPS     (R8)(AX*1), Y12
	VMOVUPS     (R9)(AX*1), Y13
	VMOVUPS     (R10)(AX*1), Y14
	VMOVUPS     (R11)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS     (R12)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS     (R13)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS     (BX)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ        $32, AX
	DECQ        CX
	JNZ         dot3x4loop

dot3x4done:
	REDUCE4(Y0, Y1, Y2, Y3, X0, (DI))
	REDUCE4(Y4, Y5, Y6, Y7, X4, 16(DI))
	REDUCE4(Y8, Y9, Y10, Y11, X8, 32(DI))
	VZEROUPPER
	RET

// func dot1x4(k8 int, a, b0, b1, b2, b3 *float32, out *[4]float32)
//
// out[c] = Σ_{t<8·k8} a[t]·bc[t], two accumulators per column.
TEXT ·dot1x4(SB), NOSPLIT, $0-56
	MOVQ k8+0(FP), CX
	MOVQ a+8(FP), R8
	MOVQ b0+16(FP), R11
	MOVQ b1+24(FP), R12
	MOVQ b2+32(FP), R13
	MOVQ b3+40(FP), BX
	MOVQ out+48(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ   AX, AX
	CMPQ   CX, $2
	JLT    dot1x4tail

dot1x4loop:
	VMOVUPS     (R8)(AX*1), Y12
	VMOVUPS     32(R8)(AX*1), Y13
	VFMADD231PS (R11)(AX*1), Y12, Y0
	VFMADD231PS (R12)(AX*1), Y12, Y1
	VFMADD231PS (R13)(AX*1), Y12, Y2
	VFMADD231PS (BX)(AX*1), Y12, Y3
	VFMADD231PS 32(R11)(AX*1), Y13, Y4
	VFMADD231PS 32(R12)(AX*1), Y13, Y5
	VFMADD231PS 32(R13)(AX*1), Y13, Y6
	VFMADD231PS 32(BX)(AX*1), Y13, Y7
	ADDQ        $64, AX
	SUBQ        $2, CX
	CMPQ        CX, $2
	JGE         dot1x4loop

dot1x4tail:
	TESTQ       CX, CX
	JZ          dot1x4done
	VMOVUPS     (R8)(AX*1), Y12
	VFMADD231PS (R11)(AX*1), Y12, Y0
	VFMADD231PS (R12)(AX*1), Y12, Y1
	VFMADD231PS (R13)(AX*1), Y12, Y2
	VFMADD231PS (BX)(AX*1), Y12, Y3

dot1x4done:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	REDUCE4(Y0, Y1, Y2, Y3, X0, (DI))
	VZEROUPPER
	RET

// func axpy3x32(k int, a0, a1, a2, b *float32, ldb int, c0, c1, c2 *float32)
//
// cr[0:32] = Σ_{j<k} ar[j]·b[j·ldb : j·ldb+32] (ldb in elements).
TEXT ·axpy3x32(SB), NOSPLIT, $0-72
	MOVQ k+0(FP), CX
	MOVQ a0+8(FP), R8
	MOVQ a1+16(FP), R9
	MOVQ a2+24(FP), R10
	MOVQ b+32(FP), SI
	MOVQ ldb+40(FP), DX
	SHLQ $2, DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	XORQ   AX, AX
	TESTQ  CX, CX
	JZ     axpy3x32done

axpy3x32loop:
	VBROADCASTSS (R8)(AX*1), Y12
	VBROADCASTSS (R9)(AX*1), Y13
	VBROADCASTSS (R10)(AX*1), Y14
	VMOVUPS      (SI), Y15
	VFMADD231PS  Y15, Y12, Y0
	VFMADD231PS  Y15, Y13, Y4
	VFMADD231PS  Y15, Y14, Y8
	VMOVUPS      32(SI), Y15
	VFMADD231PS  Y15, Y12, Y1
	VFMADD231PS  Y15, Y13, Y5
	VFMADD231PS  Y15, Y14, Y9
	VMOVUPS      64(SI), Y15
	VFMADD231PS  Y15, Y12, Y2
	VFMADD231PS  Y15, Y13, Y6
	VFMADD231PS  Y15, Y14, Y10
	VMOVUPS      96(SI), Y15
	VFMADD231PS  Y15, Y12, Y3
	VFMADD231PS  Y15, Y13, Y7
	VFMADD231PS  Y15, Y14, Y11
	ADDQ         $4, AX
	ADDQ         DX, SI
	DECQ         CX
	JNZ          axpy3x32loop

axpy3x32done:
	MOVQ    c0+48(FP), DI
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	MOVQ    c1+56(FP), DI
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	MOVQ    c2+64(FP), DI
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, 32(DI)
	VMOVUPS Y10, 64(DI)
	VMOVUPS Y11, 96(DI)
	VZEROUPPER
	RET

// func expShiftSum(x *float32, n8 int, m, scale float32, c *[13][8]float32) float32
//
// x[j] = e^(scale·(x[j]−m)) for j < 8·n8, returning the sum; c holds the
// constants of expConsts. Arguments below −87 give e^−87.
TEXT ·expShiftSum(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         n8+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	VBROADCASTSS scale+20(FP), Y1
	MOVQ         c+24(FP), DX
	VXORPS       Y15, Y15, Y15
	TESTQ        CX, CX
	JZ           expdone

exploop:
	VMOVUPS      (SI), Y2
	VSUBPS       Y0, Y2, Y2
	VMULPS       Y1, Y2, Y2
	VMAXPS       (DX), Y2, Y2
	VMULPS       32(DX), Y2, Y3
	VROUNDPS     $0, Y3, Y3
	VFNMADD231PS 64(DX), Y3, Y2
	VFNMADD231PS 96(DX), Y3, Y2
	VMOVUPS      128(DX), Y4
	VFMADD213PS  160(DX), Y2, Y4
	VFMADD213PS  192(DX), Y2, Y4
	VFMADD213PS  224(DX), Y2, Y4
	VFMADD213PS  256(DX), Y2, Y4
	VFMADD213PS  288(DX), Y2, Y4
	VFMADD213PS  320(DX), Y2, Y4
	VFMADD213PS  320(DX), Y2, Y4
	VCVTPS2DQ    Y3, Y3
	VPADDD       352(DX), Y3, Y3
	VPSLLD       $23, Y3, Y3
	VMULPS       Y3, Y4, Y4
	VMOVUPS      Y4, (SI)
	VADDPS       Y4, Y15, Y15
	ADDQ         $32, SI
	DECQ         CX
	JNZ          exploop

expdone:
	VEXTRACTF128 $1, Y15, X14
	VADDPS       X14, X15, X15
	VHADDPS      X15, X15, X15
	VHADDPS      X15, X15, X15
	VMOVSS       X15, ret+32(FP)
	VZEROUPPER
	RET

// func max8(x *float32, n8 int) float32
//
// max8 returns the largest of x[0 : 8·n8] (n8 ≥ 1).
TEXT ·max8(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n8+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	DECQ    CX
	JZ      maxdone

maxloop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    maxloop

maxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func swiglu8(dst, gate, up *float32, n8 int, c *[13][8]float32)
//
// dst[i] = gate[i]·up[i] / (1 + e^−gate[i]) for i < 8·n8, e^−gate by the
// same reduction and polynomial as expShiftSum, its argument clamped to
// [−87, 88].
TEXT ·swiglu8(SB), NOSPLIT, $0-40
	MOVQ    dst+0(FP), DI
	MOVQ    gate+8(FP), SI
	MOVQ    up+16(FP), BX
	MOVQ    n8+24(FP), CX
	MOVQ    c+32(FP), DX
	VMOVUPS 320(DX), Y9
	VXORPS  Y10, Y10, Y10
	TESTQ   CX, CX
	JZ      swigludone

swigluloop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y0, Y10, Y2
	VMINPS       384(DX), Y2, Y2
	VMAXPS       (DX), Y2, Y2
	VMULPS       32(DX), Y2, Y3
	VROUNDPS     $0, Y3, Y3
	VFNMADD231PS 64(DX), Y3, Y2
	VFNMADD231PS 96(DX), Y3, Y2
	VMOVUPS      128(DX), Y4
	VFMADD213PS  160(DX), Y2, Y4
	VFMADD213PS  192(DX), Y2, Y4
	VFMADD213PS  224(DX), Y2, Y4
	VFMADD213PS  256(DX), Y2, Y4
	VFMADD213PS  288(DX), Y2, Y4
	VFMADD213PS  320(DX), Y2, Y4
	VFMADD213PS  320(DX), Y2, Y4
	VCVTPS2DQ    Y3, Y3
	VPADDD       352(DX), Y3, Y3
	VPSLLD       $23, Y3, Y3
	VMULPS       Y3, Y4, Y4
	VADDPS       Y9, Y4, Y4
	VDIVPS       Y4, Y0, Y0
	VMULPS       (BX), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	ADDQ         $32, BX
	DECQ         CX
	JNZ          swigluloop

swigludone:
	VZEROUPPER
	RET
