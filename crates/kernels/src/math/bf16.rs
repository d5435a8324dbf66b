//! Matrix products in bfloat16 with f32 sums, on the AMX tiles of Intel's recent Xeons (Sapphire
//! Rapids and later): the operands rounded to bfloat16 (8 bits of mantissa) as they are packed,
//! each tile product summing in f32. Off unless asked for ([`set_matmul_precision`]), as
//! PyTorch's `set_float32_matmul_precision("medium")`: the sums then differ from f32's in the
//! third digit, and a network trains to about the same accuracy in a fraction of the time its
//! products took.
//!
//! Written here rather than taken from a crate: gemm (what the f32 products use) has no bfloat16
//! kernels, and Rust's AMX intrinsics are not stable, so the tile instructions are inline
//! assembly. AVX-512's own bfloat16 dot product (`vdpbf16ps`) is no faster than f32's
//! multiply-adds on these Xeons (a quarter of their FLOP rate, measured), so without AMX the
//! products stay in f32.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
use super::convolution::Layout;

/// How the kernels' matrix products run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// In f32, as everything else.
    Float32,
    /// Operands in bfloat16, sums in f32, where the CPU has AMX ([`amx_available`]).
    Bfloat16,
}

static BFLOAT16: AtomicBool = AtomicBool::new(false);

/// Runs the convolutions' matrix products in `precision` from now on, process-wide: in bfloat16,
/// every convolution but the depthwise ones is computed as matrix products (unfolded, where the
/// direct kernels take them in f32), and the depthwise convolutions and every other operation
/// stay in f32. Returns the precision they will run in: f32 on a CPU without AMX.
pub fn set_matmul_precision(precision: Precision) -> Precision {
    let bfloat16 = precision == Precision::Bfloat16 && amx_available();
    BFLOAT16.store(bfloat16, Ordering::Relaxed);
    matmul_precision()
}

/// The precision the matrix products run in ([`set_matmul_precision`]).
pub fn matmul_precision() -> Precision {
    if BFLOAT16.load(Ordering::Relaxed) {
        Precision::Bfloat16
    } else {
        Precision::Float32
    }
}

/// Whether this CPU has AMX tiles with bfloat16 products (and AVX-512's bfloat16 conversions)
/// and the operating system lets this process use them (Linux asks once, for the whole process).
pub fn amx_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(amx::request)
}

/// Tile rows and the 32-bit words of a tile row: each tile holds 16 x 64 bytes.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const TILE: usize = 16;
/// The products' blocks: 2 x 2 tiles of sums, 32 x 32 values.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const BLOCK: usize = 2 * TILE;

/// `dst [m, n] (+)= lhs [m, k] × rhs [k, n]` in bfloat16 with f32 sums, on the calling thread,
/// added to `dst` when `accumulate`, written without reading it otherwise.
///
/// # Safety
/// [`amx_available`] is true; `dst` points to `m · n` writable values apart from the operands,
/// initialized if `accumulate`; each operand holds its matrix whole.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(super) unsafe fn product(
    [m, n, k]: [usize; 3],
    (dst, dst_layout): (*mut f32, Layout),
    accumulate: bool,
    lhs: (&[f32], Layout),
    rhs: (&[f32], Layout),
) {
    assert!(lhs.0.len() == m * k && rhs.0.len() == k * n);
    if let (Layout::Transposed, Layout::Rows) = (lhs.1, rhs.1)
        && m > n
    {
        // The transpose, `dstᵀ = rhsᵀ × lhsᵀ`: the left operand is the one transposed as it is
        // packed, and that costs less on the smaller matrix.
        // SAFETY: the same matrices, each read the other way.
        return unsafe {
            product(
                [n, m, k],
                (dst, flipped(dst_layout)),
                accumulate,
                (rhs.0, Layout::Transposed),
                (lhs.0, Layout::Rows),
            )
        };
    }
    let [mp, np, kp] = [m, n, k].map(|side| side.next_multiple_of(BLOCK));
    let a = amx::pack_rows(lhs, [m, k], [mp, kp]);
    let b = amx::pack_pairs(rhs, [k, n], [kp, np]);
    // SAFETY: the caller's promises; the packed operands are padded to whole blocks.
    unsafe {
        let direct = matches!(dst_layout, Layout::Rows).then_some((dst, [m, n]));
        amx::multiply(
            &a,
            &b,
            [mp, np, kp],
            direct.filter(|_| !accumulate),
            |[i, j], block| {
                let columns = BLOCK.min(n - j);
                for (r, row) in block.chunks_exact(BLOCK).take(m - i).enumerate() {
                    let row = &row[..columns];
                    match dst_layout {
                        Layout::Rows => {
                            let to =
                                std::slice::from_raw_parts_mut(dst.add((i + r) * n + j), columns);
                            if accumulate {
                                to.iter_mut().zip(row).for_each(|(to, value)| *to += value);
                            } else {
                                to.copy_from_slice(row);
                            }
                        }
                        Layout::Transposed => {
                            for (c, value) in row.iter().enumerate() {
                                let to = dst.add((j + c) * m + i + r);
                                *to = if accumulate { *to + value } else { *value };
                            }
                        }
                    }
                }
            },
        )
    }
}

/// The other way of laying a matrix: its transpose in the same layout.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn flipped(layout: Layout) -> Layout {
    match layout {
        Layout::Rows => Layout::Transposed,
        Layout::Transposed => Layout::Rows,
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::{BLOCK, Layout, TILE};
    use crate::math::transpose::transpose;

    /// Linux's `arch_prctl` request for the tiles' state (`ARCH_REQ_XCOMP_PERM`,
    /// `XFEATURE_XTILEDATA`): the kernel keeps it off until a process asks.
    const ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;

    pub(super) fn request() -> bool {
        // CPUID leaf 7: AMX-BF16 is bit 22 of edx, AMX-TILE bit 24.
        let leaf = __cpuid_count(7, 0);
        let amx = leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0;
        if !amx || !is_x86_feature_detected!("avx512bf16") || !is_x86_feature_detected!("avx512bw")
        {
            return false;
        }
        let status: i64;
        // SAFETY: the arch_prctl system call with two integer arguments; it reads and writes no
        // memory of ours.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") ARCH_PRCTL => status,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        status == 0
    }

    /// `ldtilecfg`'s 64 bytes: the palette, and each tile's bytes per row and rows.
    #[repr(C, align(64))]
    struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    /// Where value `[r, c]` of the left operand lies once packed: in tiles of 16 rows x 32
    /// values (1 KB each, contiguous, which the prefetchers stream), tile row after tile row,
    /// `steps` tiles (`kp / 32`) in each.
    fn row_at([r, c]: [usize; 2], steps: usize) -> usize {
        ((r / TILE * steps + c / BLOCK) * TILE + r % TILE) * BLOCK + c % BLOCK
    }

    /// Where pair `p` of column `j` of the right operand lies once packed: in tiles of 16 pairs x
    /// 16 columns (1 KB each), tile column after tile column, `steps` tiles in each.
    fn pair_at([p, j]: [usize; 2], steps: usize) -> usize {
        ((j / TILE * steps + p / TILE) * TILE + p % TILE) * TILE + j % TILE
    }

    /// The left operand as bfloat16 `[mp, kp]` in tiles ([`row_at`]), zero beyond `[m, k]`.
    pub(super) fn pack_rows(
        (values, layout): (&[f32], Layout),
        [m, k]: [usize; 2],
        [mp, kp]: [usize; 2],
    ) -> Vec<u16> {
        let mut packed = vec![0u16; mp * kp];
        let steps = kp / BLOCK;
        let mut pack = |rows: &[f32]| {
            for (r, row) in rows.chunks_exact(k).enumerate() {
                // SAFETY: `amx_available` checked AVX-512 BF16 and BW before any product; each
                // 32 values of the row go to their tile's row, a tile (512 values) apart.
                unsafe { rounded(row, &mut packed[row_at([r, 0], steps)..], TILE * BLOCK) };
            }
        };
        if let Layout::Transposed = layout {
            // `values` is `[k, m]`: turned to `[m, k]` first, in f32, by vector tiles.
            let mut rows = vec![0.0; m * k];
            transpose((values, m), (&mut rows, k), [k, m]);
            pack(&rows);
        } else {
            pack(values);
        }
        packed
    }

    /// The right operand as bfloat16 pairs, `[kp / 2, np]` in tiles ([`pair_at`]): the word of
    /// pair `p` and column `j` holds rows `2p` and `2p + 1` of column `j` (the layout AMX's
    /// products read), zero beyond `[k, n]`.
    pub(super) fn pack_pairs(
        (values, layout): (&[f32], Layout),
        [k, n]: [usize; 2],
        [kp, np]: [usize; 2],
    ) -> Vec<u32> {
        let mut packed = vec![0u32; kp / 2 * np];
        let steps = kp / BLOCK;
        if let Layout::Transposed = layout {
            // `values` is `[n, k]`: each of its rows rounded is a column's pairs already.
            let mut column = vec![0u16; kp];
            for (j, row) in values.chunks_exact(k).enumerate() {
                // SAFETY: as in `pack_rows`; `column` holds the row whole.
                unsafe { rounded(row, &mut column, BLOCK) };
                for (p, pair) in column.chunks_exact(2).enumerate() {
                    packed[pair_at([p, j], steps)] = u32::from(pair[0]) | u32::from(pair[1]) << 16;
                }
            }
        } else {
            let zeros = vec![0.0; n];
            for p in 0..k.div_ceil(2) {
                let row = |r: usize| values.get(r * n..(r + 1) * n).unwrap_or(&zeros);
                let to = &mut packed[pair_at([p, 0], steps)..];
                // SAFETY: as in `pack_rows`; each 16 words go to their tile's row, a column of
                // tiles apart.
                unsafe { interleaved(row(2 * p), row(2 * p + 1), to, steps * TILE * TILE) };
            }
        }
        packed
    }

    /// `from` rounded to bfloat16 (to nearest even): each 32 values into `to`, `stride` values
    /// after the 32 before them; the rest of `to` is left as it was.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    fn rounded(from: &[f32], to: &mut [u16], stride: usize) {
        for (i, chunk) in from.chunks(BLOCK).enumerate() {
            let (low, high) = halves(chunk);
            let packed = _mm512_cvtne2ps_pbh(high, low);
            let target = &mut to[i * stride..][..chunk.len()];
            let mask = ((1u64 << chunk.len()) - 1) as u32;
            // SAFETY: the mask stores the chunk's values, inside `target`.
            unsafe { _mm512_mask_storeu_epi16(target.as_mut_ptr().cast(), mask, bits(packed)) };
        }
    }

    /// The first 16 and the next 16 of up to 32 values, zeros beyond them.
    #[target_feature(enable = "avx512f")]
    fn halves(chunk: &[f32]) -> (__m512, __m512) {
        let (first, second) = chunk.split_at(chunk.len().min(TILE));
        (loaded(first), loaded(second))
    }

    /// Up to 16 values in a vector, zeros beyond them.
    #[target_feature(enable = "avx512f")]
    fn loaded(values: &[f32]) -> __m512 {
        let mask = ((1u32 << values.len()) - 1) as u16;
        // SAFETY: the mask loads `values` only (at most 16 of them: the mask has 16 bits).
        unsafe { _mm512_maskz_loadu_ps(mask, values.as_ptr()) }
    }

    /// Two rows of equal length rounded to bfloat16 and interleaved into words, each 16 into
    /// `to`, `stride` words after the 16 before them: word `j` holds `first[j]` in its low half
    /// and `second[j]` in its high one; the rest of `to` is left as it was.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    fn interleaved(first: &[f32], second: &[f32], to: &mut [u32], stride: usize) {
        assert!(first.len() == second.len());
        // Word j takes the j-th of the first 16 and the j-th of the second 16 halves.
        let order = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
            4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        for (i, (a, b)) in first.chunks(TILE).zip(second.chunks(TILE)).enumerate() {
            let target = &mut to[i * stride..][..a.len()];
            let mask = ((1u32 << a.len()) - 1) as u16;
            let pairs = _mm512_cvtne2ps_pbh(loaded(b), loaded(a));
            let pairs = _mm512_permutexvar_epi16(order, bits(pairs));
            // SAFETY: the mask stores a word for each value, inside `target`.
            unsafe { _mm512_mask_storeu_epi32(target.as_mut_ptr().cast(), mask, pairs) };
        }
    }

    /// 32 bfloat16 values as integer lanes.
    fn bits(values: __m512bh) -> __m512i {
        // SAFETY: both are 64 bytes of plain lanes, any bits valid.
        unsafe { std::mem::transmute(values) }
    }

    /// `a [mp, kp]` (bfloat16) times `b` (bfloat16 pairs, `[kp / 2, np]`), every dimension a
    /// multiple of [`BLOCK`]. Each 32 x 32 block of the product that lies whole inside `direct`'s
    /// row-major `[m, n]` matrix, if any, is stored there; every other goes to `write` with its
    /// first row and column.
    ///
    /// # Safety
    /// The process may use the tiles ([`super::amx_available`]); `direct` points to `m · n`
    /// writable values apart from the operands.
    pub(super) unsafe fn multiply(
        a: &[u16],
        b: &[u32],
        [mp, np, kp]: [usize; 3],
        direct: Option<(*mut f32, [usize; 2])>,
        mut write: impl FnMut([usize; 2], &[f32; BLOCK * BLOCK]),
    ) {
        assert!(a.len() == mp * kp && b.len() == kp / 2 * np);
        assert!(mp % BLOCK == 0 && np % BLOCK == 0 && kp % BLOCK == 0);
        let config = Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            // Palette 1 has 8 tiles; the rest of the fields must be zero.
            bytes_per_row: std::array::from_fn(|t| if t < 8 { 64 } else { 0 }),
            rows: std::array::from_fn(|t| if t < 8 { TILE as u8 } else { 0 }),
        };
        let mut block = [0f32; BLOCK * BLOCK];
        let steps = kp / BLOCK;
        // SAFETY: tiles 0-3 hold sums, 4-5 rows of `a`, 6-7 pairs of `b`; every load reads 16 rows
        // of 64 bytes inside its operand (the asserts above), every store 16 rows of 64 bytes
        // inside `block` or, for whole blocks, inside `direct`'s matrix.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly));
            for j in (0..np).step_by(BLOCK) {
                for i in (0..mp).step_by(BLOCK) {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    for step in 0..steps {
                        asm!(
                            "tileloadd tmm4, [{a} + {s}*1]",
                            "tileloadd tmm5, [{a2} + {s}*1]",
                            "tileloadd tmm6, [{b} + {s}*1]",
                            "tileloadd tmm7, [{b2} + {s}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a = in(reg) a.as_ptr().add(row_at([i, step * BLOCK], steps)),
                            a2 = in(reg) a.as_ptr().add(row_at([i + TILE, step * BLOCK], steps)),
                            b = in(reg) b.as_ptr().add(pair_at([step * TILE, j], steps)),
                            b2 = in(reg) b.as_ptr().add(pair_at([step * TILE, j + TILE], steps)),
                            // Each tile's rows are 64 bytes apart.
                            s = in(reg) 64usize,
                            options(nostack, readonly),
                        );
                    }
                    let whole = direct.filter(|&(_, [m, n])| i + BLOCK <= m && j + BLOCK <= n);
                    let (c, stride) = match whole {
                        Some((dst, [_, n])) => (dst.add(i * n + j), n),
                        None => (block.as_mut_ptr(), BLOCK),
                    };
                    asm!(
                        "tilestored [{c0} + {s}*1], tmm0",
                        "tilestored [{c1} + {s}*1], tmm1",
                        "tilestored [{c2} + {s}*1], tmm2",
                        "tilestored [{c3} + {s}*1], tmm3",
                        c0 = in(reg) c,
                        c1 = in(reg) c.add(TILE),
                        c2 = in(reg) c.add(TILE * stride),
                        c3 = in(reg) c.add(TILE * stride + TILE),
                        s = in(reg) stride * 4,
                        options(nostack),
                    );
                    if whole.is_none() {
                        write([i, j], &block);
                    }
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod amx {
    pub(super) fn request() -> bool {
        false
    }
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;

    /// `x` rounded to the nearest bfloat16 (ties to even), as a float.
    fn rounded(x: f32) -> f64 {
        let bits = x.to_bits();
        f64::from(f32::from_bits(
            (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff_0000,
        ))
    }

    /// `matrix [rows, columns]` as it lies in `layout`.
    fn laid(matrix: &[f32], [rows, columns]: [usize; 2], layout: Layout) -> Vec<f32> {
        match layout {
            Layout::Rows => matrix.to_vec(),
            Layout::Transposed => (0..rows * columns)
                .map(|i| matrix[(i % rows) * columns + i / rows])
                .collect(),
        }
    }

    #[test]
    fn tile_products_are_the_bfloat16_operands_products_summed_in_f32() {
        if !amx_available() {
            eprintln!("skipped: this CPU or system has no AMX tiles with bfloat16 products");
            return;
        }
        let mut rng = rng::Rng::new(7);
        let mut random =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.unit() * 2.0 - 1.0).collect() };
        let layouts = [Layout::Rows, Layout::Transposed];
        for [m, n, k] in [
            [1, 1, 1],
            [37, 45, 70],
            [64, 96, 128],
            [512, 672, 112],
            [300, 112, 672],
            [3, 130, 33],
            [100, 17, 257],
        ] {
            let (lhs, rhs, start) = (random(m * k), random(k * n), random(m * n));
            let cases = layouts.iter().flat_map(|&l| layouts.map(|r| (l, r)));
            let cases = cases.flat_map(|(l, r)| layouts.map(|d| (l, r, d)));
            let cases = cases.flat_map(|(l, r, d)| [false, true].map(|a| (l, r, d, a)));
            for (lhs_layout, rhs_layout, dst_layout, accumulate) in cases {
                let mut dst = laid(&start, [m, n], dst_layout);
                let (a, b) = (
                    laid(&lhs, [m, k], lhs_layout),
                    laid(&rhs, [k, n], rhs_layout),
                );
                // SAFETY: AMX is available; `dst` holds `[m, n]`, initialized.
                unsafe {
                    product(
                        [m, n, k],
                        (dst.as_mut_ptr(), dst_layout),
                        accumulate,
                        (&a, lhs_layout),
                        (&b, rhs_layout),
                    )
                };
                // Laid out again as it was laid: row-major either way.
                let got = laid(&dst, [n, m], dst_layout);
                for i in 0..m {
                    for j in 0..n {
                        let terms =
                            (0..k).map(|p| rounded(lhs[i * k + p]) * rounded(rhs[p * n + j]));
                        let (sum, size) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                        let expected = sum
                            + if accumulate {
                                f64::from(start[i * n + j])
                            } else {
                                0.0
                            };
                        let value = f64::from(got[i * n + j]);
                        assert!(
                            (value - expected).abs() <= 1e-5 * (size + expected.abs()) + 1e-6,
                            "[{m}, {n}, {k}] {lhs_layout:?} x {rhs_layout:?} into {dst_layout:?} \
                             (accumulate {accumulate}) at ({i}, {j}): {value} against {expected}"
                        );
                    }
                }
            }
        }
    }
}
