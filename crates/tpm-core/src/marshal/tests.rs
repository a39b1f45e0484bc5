use super::*;
use crate::constants as c;
use crate::rc::Rc;

crate::tpm_struct! {
    /// A test structure.
    pub struct Pair { pub a: u16, pub b: Buffer<4>, pub c: List<u32, 2> }
}

crate::tpm_params! {
    /// Test parameters.
    pub struct Params { pub x: u32, pub y: Buffer<2> }
}

#[test]
fn round_trip() {
    let p = Pair {
        a: 0x1234,
        b: Buffer(vec![1, 2]),
        c: List(vec![7, 8]),
    };
    let bytes = p.to_bytes();
    assert_eq!(
        bytes,
        [0x12, 0x34, 0, 2, 1, 2, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 8]
    );
    assert_eq!(Pair::from_bytes(&bytes).unwrap(), p);
}

#[test]
fn every_truncation_fails_cleanly() {
    let bytes = Pair {
        a: 1,
        b: Buffer(vec![9; 4]),
        c: List(vec![1, 2]),
    }
    .to_bytes();
    for n in 0..bytes.len() {
        assert_eq!(
            Pair::from_bytes(&bytes[..n]),
            Err(Rc(c::RC_INSUFFICIENT)),
            "len {n}"
        );
    }
}

#[test]
fn oversize_sizes_and_counts() {
    // size 5 > max 4
    assert_eq!(
        Pair::from_bytes(&[0, 1, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0]),
        Err(Rc(c::RC_SIZE))
    );
    // count 3 > max 2
    let mut b = vec![0, 1, 0, 0, 0, 0, 0, 3];
    b.extend([0u8; 12]);
    assert_eq!(Pair::from_bytes(&b), Err(Rc(c::RC_SIZE)));
    // trailing byte
    assert_eq!(
        Pair::from_bytes(&[0, 1, 0, 0, 0, 0, 0, 0, 9]),
        Err(Rc(c::RC_SIZE))
    );
}

#[test]
fn params_parse_in_order() {
    let p = Params::parse(&mut Reader::new(&[0, 0, 0, 7, 0, 1, 9])).unwrap();
    assert_eq!((p.x, p.y.0), (7, vec![9]));
}

#[test]
fn params_are_numbered() {
    let mut r = Reader::new(&[0, 0, 0, 1, 0, 3, 1, 2, 3]);
    assert_eq!(
        Params::parse(&mut r).unwrap_err(),
        Rc(c::RC_SIZE | c::RC_P | (2 << 8))
    );
    let mut r = Reader::new(&[0, 0, 0, 1, 0, 1, 1, 5]);
    assert_eq!(Params::parse(&mut r).unwrap_err(), Rc(c::RC_SIZE));
    let mut r = Reader::new(&[0, 0]);
    assert_eq!(
        Params::parse(&mut r).unwrap_err(),
        Rc(c::RC_INSUFFICIENT | c::RC_P | (1 << 8))
    );
}

#[test]
fn sized_structure_must_fill_its_size() {
    type S = Sized2b<u32>;
    assert_eq!(S::from_bytes(&[0, 4, 0, 0, 0, 1]).unwrap(), Sized2b(1));
    assert_eq!(S::from_bytes(&[0, 5, 0, 0, 0, 1, 0]), Err(Rc(c::RC_SIZE)));
    assert_eq!(S::from_bytes(&[0, 3, 0, 0, 0]), Err(Rc(c::RC_SIZE)));
    assert_eq!(S::from_bytes(&[0, 0]), Err(Rc(c::RC_SIZE)));
}
