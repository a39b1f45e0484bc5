//! Declare a wire structure once; the macros derive Marshal and Unmarshal.

/// Declare a TPM structure: fields are marshalled in declaration order.
///
/// ```ignore
/// tpm_struct! {
///     /// TPMS_CLOCK_INFO
///     pub struct ClockInfo { pub clock: u64, pub reset_count: u32, pub restart_count: u32, pub safe: bool }
/// }
/// ```
#[macro_export]
macro_rules! tpm_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl $crate::marshal::Marshal for $name {
            #[allow(unused_variables)]
            fn marshal(&self, w: &mut Vec<u8>) {
                $($crate::marshal::Marshal::marshal(&self.$f, w);)*
            }
        }

        impl $crate::marshal::Unmarshal for $name {
            #[allow(unused_variables)]
            fn unmarshal(r: &mut $crate::marshal::Reader<'_>) -> $crate::rc::TpmResult<Self> {
                Ok(Self { $($f: <$t as $crate::marshal::Unmarshal>::unmarshal(r)?),* })
            }
        }
    };
}

/// Declare a command's parameter area: like [`tpm_struct!`], but errors are
/// numbered with the parameter's position (TPM_RC_P + n), and the whole area
/// must be consumed (TPM_RC_SIZE otherwise).
#[macro_export]
macro_rules! tpm_params {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl $name {
            /// Parse the parameter area, numbering errors by parameter.
            #[allow(unused_variables, unused_mut, unused_assignments)]
            pub fn parse(r: &mut $crate::marshal::Reader<'_>) -> $crate::rc::TpmResult<Self> {
                let mut n = 0u32;
                let v = Self { $($f: {
                    n += 1;
                    <$t as $crate::marshal::Unmarshal>::unmarshal(r).map_err(|e| e.param(n))?
                }),* };
                r.finish()?;
                Ok(v)
            }
        }
    };
}

/// Declare a response's parameter area (marshal only).
#[macro_export]
macro_rules! tpm_response {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl $crate::marshal::Marshal for $name {
            #[allow(unused_variables)]
            fn marshal(&self, w: &mut Vec<u8>) {
                $($crate::marshal::Marshal::marshal(&self.$f, w);)*
            }
        }
    };
}

/// Declare an interface type (TPMI_*): a newtype over an integer whose
/// unmarshal accepts only the values `$ok` allows, failing with `$rc`.
#[macro_export]
macro_rules! tpm_interface {
    ($(#[$m:meta])* pub struct $name:ident($base:ty), error = $rc:expr, accept = $ok:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        pub struct $name(pub $base);

        impl $crate::marshal::Marshal for $name {
            fn marshal(&self, w: &mut Vec<u8>) {
                $crate::marshal::Marshal::marshal(&self.0, w);
            }
        }

        impl $crate::marshal::Unmarshal for $name {
            fn unmarshal(r: &mut $crate::marshal::Reader<'_>) -> $crate::rc::TpmResult<Self> {
                let v = <$base as $crate::marshal::Unmarshal>::unmarshal(r)?;
                let ok: fn($base) -> bool = $ok;
                if ok(v) {
                    Ok($name(v))
                } else {
                    Err($crate::rc::Rc($rc))
                }
            }
        }
    };
}
