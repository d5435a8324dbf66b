//! Output buffers filled in parallel pieces. `vec![0.0; len]` zeroes the whole buffer on one
//! thread before the work starts (glibc's `calloc`, on the memory the binaries keep), and the
//! writers then write it all again from cold cache: on a 2-core Xeon that cost EfficientNet-Lite0's
//! inference a quarter of its time. Here each piece is zeroed by the thread that writes it, just
//! before, while its lines are in that core's cache.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `len` values, written in pieces of `piece` (the last may be shorter) by `write(scratch, i,
/// values)` for piece `i`, in parallel over rayon's pool, each with the `scratch` of its thread.
/// Each piece is zeroed before `write` sees it.
pub fn written_in_pieces<S>(
    len: usize,
    piece: usize,
    scratch: impl Fn() -> S + Send + Sync,
    write: impl Fn(&mut S, usize, &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    let mut output = Vec::with_capacity(len);
    if len == 0 {
        return output;
    }
    output.spare_capacity_mut()[..len]
        .par_chunks_mut(piece)
        .enumerate()
        .for_each_init(scratch, |scratch, (i, values)| {
            for value in values.iter_mut() {
                value.write(0.0);
            }
            // SAFETY: every value was initialized just above, and `MaybeUninit<f32>` has the
            // layout of `f32`.
            let values = unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) };
            write(scratch, i, values);
        });
    // SAFETY: the pieces cover the first `len` values, and each was initialized above (a panic in
    // `write` reaches the caller before this line, dropping the buffer empty).
    unsafe { output.set_len(len) };
    output
}

/// `len` values written in pieces of `piece` by `write(i, values)`, which initializes every value
/// of piece `i` (a matrix product that does not accumulate) and returns them: the pieces are not
/// zeroed first, a pass over the output saved.
pub fn overwritten_in_pieces(
    len: usize,
    piece: usize,
    write: impl for<'a> Fn(usize, &'a mut [MaybeUninit<f32>]) -> &'a mut [f32] + Send + Sync,
) -> Vec<f32> {
    let mut output = Vec::with_capacity(len);
    if len == 0 {
        return output;
    }
    output.spare_capacity_mut()[..len]
        .par_chunks_mut(piece)
        .enumerate()
        .for_each(|(i, values)| {
            let (start, count) = (values.as_ptr(), values.len());
            let written = write(i, values);
            // What the writer returns must be its piece, initialized.
            assert!(std::ptr::eq(written.as_ptr(), start.cast()) && written.len() == count);
        });
    // SAFETY: the pieces cover the first `len` values, and each writer returned its piece as
    // initialized values (checked above; a panic reaches the caller before this line).
    unsafe { output.set_len(len) };
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_piece_is_zeroed_and_written_whole() {
        // Adding to each value shows it was zero; the last piece is shorter.
        let written = written_in_pieces(
            10,
            4,
            || (),
            |(), i, values| {
                for value in values.iter_mut() {
                    *value += i as f32 + 1.0;
                }
            },
        );
        assert_eq!(written, [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0]);
        assert!(written_in_pieces(0, 4, || (), |(), _, _| unreachable!()).is_empty());
    }

    #[test]
    fn overwritten_pieces_hold_what_their_writers_wrote() {
        let written = overwritten_in_pieces(10, 4, |i, values| {
            for value in values.iter_mut() {
                value.write(i as f32);
            }
            // SAFETY: every value was written just above.
            unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
        });
        assert_eq!(written, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]);
        assert!(overwritten_in_pieces(0, 4, |_, _| unreachable!()).is_empty());
    }
}
