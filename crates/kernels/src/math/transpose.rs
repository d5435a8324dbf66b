//! Out-of-place transposes of f32 matrices between strided buffers, eight by eight in AVX
//! registers where the CPU has them: the channels-last depthwise convolution turns every sample
//! around and back, and element by element those copies took a third of its time.

/// `dst[j·dst_stride + i] = src[i·src_stride + j]` for every `i < rows` and `j < columns`.
pub fn transpose(
    (src, src_stride): (&[f32], usize),
    (dst, dst_stride): (&mut [f32], usize),
    [rows, columns]: [usize; 2],
) {
    if rows == 0 || columns == 0 {
        return;
    }
    assert!(
        src.len() >= (rows - 1) * src_stride + columns,
        "source too short"
    );
    assert!(
        dst.len() >= (columns - 1) * dst_stride + rows,
        "target too short"
    );
    let tiled = [rows / 8 * 8, columns / 8 * 8];
    if !tiles_in_registers((src, src_stride), (&mut *dst, dst_stride), tiled) {
        one_by_one(
            (src, src_stride),
            (&mut *dst, dst_stride),
            0..tiled[0],
            0..tiled[1],
        );
    }
    one_by_one(
        (src, src_stride),
        (&mut *dst, dst_stride),
        tiled[0]..rows,
        0..columns,
    );
    one_by_one(
        (src, src_stride),
        (dst, dst_stride),
        0..tiled[0],
        tiled[1]..columns,
    );
}

fn one_by_one(
    (src, src_stride): (&[f32], usize),
    (dst, dst_stride): (&mut [f32], usize),
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
) {
    for i in rows {
        for j in columns.clone() {
            dst[j * dst_stride + i] = src[i * src_stride + j];
        }
    }
}

/// The `[rows, columns]` corner (both multiples of 8) in 8x8 tiles with AVX; false, touching
/// nothing, where the CPU lacks AVX2 and FMA (pulp's V3 level).
#[cfg(target_arch = "x86_64")]
fn tiles_in_registers(src: (&[f32], usize), dst: (&mut [f32], usize), tiled: [usize; 2]) -> bool {
    let Some(simd) = pulp::x86::V3::try_new() else {
        return false;
    };
    pulp::Simd::vectorize(
        simd,
        Tiles {
            simd,
            src,
            dst,
            tiled,
        },
    );
    true
}

#[cfg(not(target_arch = "x86_64"))]
fn tiles_in_registers(_: (&[f32], usize), _: (&mut [f32], usize), _: [usize; 2]) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
struct Tiles<'a> {
    simd: pulp::x86::V3,
    src: (&'a [f32], usize),
    dst: (&'a mut [f32], usize),
    tiled: [usize; 2],
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for Tiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let avx = self.simd.avx;
        let ((src, src_stride), (dst, dst_stride)) = (self.src, self.dst);
        for i in (0..self.tiled[0]).step_by(8) {
            for j in (0..self.tiled[1]).step_by(8) {
                // SAFETY: `transpose` asserted that both buffers hold every row and column of
                // the corner, whose sides are multiples of 8.
                let r: [_; 8] = std::array::from_fn(|k| unsafe {
                    avx._mm256_loadu_ps(src.as_ptr().add((i + k) * src_stride + j))
                });
                let t0 = avx._mm256_unpacklo_ps(r[0], r[1]);
                let t1 = avx._mm256_unpackhi_ps(r[0], r[1]);
                let t2 = avx._mm256_unpacklo_ps(r[2], r[3]);
                let t3 = avx._mm256_unpackhi_ps(r[2], r[3]);
                let t4 = avx._mm256_unpacklo_ps(r[4], r[5]);
                let t5 = avx._mm256_unpackhi_ps(r[4], r[5]);
                let t6 = avx._mm256_unpacklo_ps(r[6], r[7]);
                let t7 = avx._mm256_unpackhi_ps(r[6], r[7]);
                let u0 = avx._mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = avx._mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = avx._mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = avx._mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = avx._mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = avx._mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = avx._mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = avx._mm256_shuffle_ps::<0xEE>(t5, t7);
                let columns = [
                    avx._mm256_permute2f128_ps::<0x20>(u0, u4),
                    avx._mm256_permute2f128_ps::<0x20>(u1, u5),
                    avx._mm256_permute2f128_ps::<0x20>(u2, u6),
                    avx._mm256_permute2f128_ps::<0x20>(u3, u7),
                    avx._mm256_permute2f128_ps::<0x31>(u0, u4),
                    avx._mm256_permute2f128_ps::<0x31>(u1, u5),
                    avx._mm256_permute2f128_ps::<0x31>(u2, u6),
                    avx._mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (k, column) in columns.into_iter().enumerate() {
                    // SAFETY: as for the loads.
                    unsafe {
                        avx._mm256_storeu_ps(dst.as_mut_ptr().add((j + k) * dst_stride + i), column)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transposes_every_size_and_stride() {
        for [rows, columns, src_stride, dst_stride] in [
            [1, 1, 1, 1],
            [8, 8, 8, 8],
            [16, 24, 30, 17],
            [13, 9, 9, 13],
            [7, 100, 101, 64],
            [672, 100, 100, 672],
            [0, 5, 5, 0],
        ] {
            let src: Vec<f32> = (0..rows * src_stride).map(|v| v as f32).collect();
            let mut dst = vec![-1.0; columns * dst_stride];
            transpose((&src, src_stride), (&mut dst, dst_stride), [rows, columns]);
            for j in 0..columns {
                for k in 0..dst_stride {
                    let expected = if k < rows {
                        src[k * src_stride + j]
                    } else {
                        -1.0
                    };
                    assert_eq!(
                        dst[j * dst_stride + k],
                        expected,
                        "{rows}x{columns} at {j},{k}"
                    );
                }
            }
        }
    }
}
