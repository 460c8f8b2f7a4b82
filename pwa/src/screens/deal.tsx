export function DealView() { return <div class="screen"><h1>Deal</h1></div> }
