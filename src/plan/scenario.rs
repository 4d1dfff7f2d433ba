//! The scenario file: TOML, every key optional, unknown keys refused. Flags are turned into a
//! `Scenario` too (see `cli`), and `overlay` puts them on top of the file's, so a key and its
//! flag can never mean two different things.

use super::{ClientSection, ExpectSection, LoadSection, PayloadSection, TargetSection};
use serde::{Deserialize, Serialize};

/// A whole scenario file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the run and its results directory (default: the file name, or "run").
    pub name: Option<String>,
    /// What the scenario reproduces, shown in reports.
    pub description: Option<String>,
    /// How fast and how long.
    #[serde(default, skip_serializing_if = "is_default")]
    pub load: LoadSection,
    /// How each connection is opened and closed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub client: ClientSection,
    /// What is exchanged on each connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub payload: PayloadSection,
    /// Where connections go: the embedded server (default) or an external address.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: TargetSection,
    /// Linux lab: a private network namespace with its own port range and TIME_WAIT settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<super::lab::LabConfig>,
    /// What the run must show for CI: each key becomes a check of the verdict.
    #[serde(default, skip_serializing_if = "is_default")]
    pub expect: ExpectSection,
}

/// One definition per key: a section field's doc comment is its `--help` text, its `#[arg]`
/// its `portlab run` flag, its name (and serde attributes) its scenario key, and the overlay of
/// flags on a file follows from the same list. A field's type says how a flag lays over the
/// file's value ([`Layer`]): an `Option` is replaced when the flag is given, a `bool` switch
/// can only be turned on, a nested section merges key by key.
///
/// The range a key accepts is written beside it: `where v => CHECK` after the field's type,
/// with `v` the field's value (`&Option<T>`) and CHECK a `Result<(), String>` whose message
/// says what is accepted ([`super::bounds`] has the helpers). `check_bounds` runs them in
/// field order and names the key (`<section>.<field>`) and the flag its `#[arg]` gives
/// (`where("--flag") v => ...` for a field whose flag is not its own, like the tolerances).
/// Adding a key with a range is one field, with its bound, in its section's file.
macro_rules! section {
    (
        $(#[$m:meta])*
        pub struct $name:ident in $sec:literal {
            $(
                $(#[$fm:meta])*
                pub $f:ident : $t:ty $(where $(($flag:literal))? $v:ident => $check:expr)?,
            )+
        }
    ) => {
        $(#[$m])*
        pub struct $name {
            $( $(#[$fm])* pub $f: $t, )+
        }

        impl $name {
            /// Every key of this section, in field order (the round-trip test of plan.toml
            /// checks that each one is exercised).
            #[cfg(test)]
            pub const KEYS: &'static [&'static str] = &[$(stringify!($f)),+];

            /// `top`'s keys over `self`'s: a key set in `top` wins.
            pub fn overlay(&mut self, top: $name) {
                $( $crate::plan::scenario::Layer::layer(&mut self.$f, top.$f); )+
            }

            /// Every bounded key of this section, in field order: the first out of range is
            /// refused, naming the key, its flag and the accepted range.
            pub fn check_bounds(&self) -> Result<(), $crate::plan::PlanError> {
                $( $(
                    let $v: &$t = &self.$f;
                    let checked: Result<(), String> = $check;
                    if let Err(message) = checked {
                        let given: &[&'static str] = &[$($flag)?];
                        let flag = given
                            .first()
                            .copied()
                            .or_else(|| Self::flag_of(stringify!($f)))
                            .unwrap_or_default();
                        let key = concat!($sec, ".", stringify!($f));
                        return Err($crate::plan::invalid(key, flag, message));
                    }
                )? )+
                Ok(())
            }

            /// The `portlab run` flag of the field whose clap id is `id` (the field's name
            /// unless its `#[arg(id)]` says otherwise), as its `#[arg]` spells it: the one
            /// place a key is given its flag.
            pub fn flag_of(id: &str) -> Option<&'static str> {
                // Built once from clap's own definition; the strings live as long as the
                // process (a few dozen flags), as messages take a `&'static str`.
                static FLAGS: std::sync::OnceLock<Vec<(String, &'static str)>> =
                    std::sync::OnceLock::new();
                FLAGS
                    .get_or_init(|| {
                        <$name as clap::Args>::augment_args(clap::Command::new($sec))
                            .get_arguments()
                            .filter_map(|a| {
                                let flag = format!("--{}", a.get_long()?);
                                Some((a.get_id().to_string(), &*Box::leak(flag.into_boxed_str())))
                            })
                            .collect()
                    })
                    .iter()
                    .find(|(known, _)| known == id)
                    .map(|(_, flag)| *flag)
            }
        }

        impl $crate::plan::scenario::Layer for $name {
            fn layer(&mut self, top: Self) {
                self.overlay(top);
            }
        }
    };
}
pub(crate) use section;

/// How one key of a section takes the value laid over it (the flags over the file).
pub trait Layer {
    /// Puts `top` over `self`.
    fn layer(&mut self, top: Self);
}

impl<T> Layer for Option<T> {
    /// A key set on top wins; an unset one leaves the value below alone.
    fn layer(&mut self, top: Self) {
        if top.is_some() {
            *self = top;
        }
    }
}

impl Layer for bool {
    /// A switch (`--lab`) can only be turned on: an absent flag is `false`, not "off".
    fn layer(&mut self, top: Self) {
        *self |= top;
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Scenario {
    /// Puts `top` (usually the flags) over `self` (usually the file), key by key, `[lab]`
    /// and `[lab.server]` included.
    pub fn overlay(mut self, mut top: Scenario) -> Scenario {
        self.name = top.name.or(self.name);
        self.description = top.description.or(self.description);
        self.lab = match (self.lab.take(), top.lab.take()) {
            (Some(mut file), Some(flags)) => {
                file.overlay(flags);
                Some(file)
            }
            (file, flags) => flags.or(file),
        };
        // Per-check tolerances merge by name: a flag replaces the file's value for its check.
        if let (Some(file), Some(flags)) = (&self.expect.tolerance, &mut top.expect.tolerance) {
            for (name, pct) in file {
                flags.entry(name.clone()).or_insert(*pct);
            }
        }
        self.load.overlay(top.load);
        self.client.overlay(top.client);
        self.payload.overlay(top.payload);
        self.target.overlay(top.target);
        self.expect.overlay(top.expect);
        self
    }
}
