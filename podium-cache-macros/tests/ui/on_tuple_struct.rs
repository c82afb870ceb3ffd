use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
struct Event(String);

fn main() {}
